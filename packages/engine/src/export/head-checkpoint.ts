/**
 * Checkpoints that cost (almost) nothing while the base is frozen. During the head phase only the
 * head's weights change, so a checkpoint is:
 *
 *   <phase>-e<epoch>.zip        checkpoint.json  { kind: "graft-head-checkpoint", version: 1, base: { id, checksum },
 *                                                  template: { file, sha256 }, weights: [{ name, offset, bytes }] }
 *                               head.bin         the head's weight bytes, in that order
 *                               training.json    as in a full checkpoint
 *
 * plus, once per job, the **template** `frozen-base-<sha256 prefix>.zip` beside it: a complete
 * bundle of the same model (the base's weights, model.json, labels, the task's files). A
 * checkpoint is assembled into a complete model when asked (`assembleHeadCheckpoint`): the
 * template's entries in order, `weights.bin` with the head's byte ranges replaced and training.json
 * the checkpoint's — the same bytes as a full checkpoint written at that epoch (the engine's pin
 * test hashes assembled checkpoints against full ones). No TensorFlow here: the API assembles
 * downloads with it.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { openZip, readZipEntry, writeZip, zipEntries, type ZipInput } from '../util/zip.ts';

export const HEAD_CHECKPOINT_KIND = 'graft-head-checkpoint';
export const HEAD_CHECKPOINT_FILE = 'checkpoint.json';
export const HEAD_WEIGHTS_FILE = 'head.bin';

export interface HeadCheckpointManifest {
  kind: typeof HEAD_CHECKPOINT_KIND;
  version: 1;
  /** The frozen base the head sits on: its id and the cut model's checksum (topology and weights). */
  base: { id: string; checksum: string };
  /** The complete bundle this checkpoint patches: a file name in the same directory (or storage prefix) and its sha256. */
  template: { file: string; sha256: string };
  /** Byte ranges of the template's weights.bin that head.bin replaces, in head.bin's order. */
  weights: { name: string; offset: number; bytes: number }[];
}

/** Byte ranges of `weights.bin` per weight, from model.json's manifest (float32/int32: 4 bytes a value). */
export function weightRanges(modelJson: { weightsManifest: { weights: { name: string; shape: number[]; dtype: string }[] }[] }): Map<string, { offset: number; bytes: number }> {
  const ranges = new Map<string, { offset: number; bytes: number }>();
  let offset = 0;
  for (const group of modelJson.weightsManifest) {
    for (const w of group.weights) {
      if (w.dtype !== 'float32' && w.dtype !== 'int32') throw new Error(`weight ${w.name}: dtype ${w.dtype} is not supported in a head checkpoint`);
      const bytes = w.shape.reduce((a, b) => a * b, 1) * 4;
      ranges.set(w.name, { offset, bytes });
      offset += bytes;
    }
  }
  return ranges;
}

export function templateFileName(sha256: string): string {
  return `frozen-base-${sha256.slice(0, 16)}.zip`;
}

export async function sha256OfFile(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}

/** The light checkpoint's files; `training`: training.json's bytes (as the bundle writes them). */
export function headCheckpointFiles(manifest: HeadCheckpointManifest, head: Uint8Array, training: Uint8Array): ZipInput[] {
  return [
    { name: HEAD_CHECKPOINT_FILE, data: Buffer.from(JSON.stringify(manifest, null, 1)) },
    { name: HEAD_WEIGHTS_FILE, data: head },
    { name: 'training.json', data: training },
  ];
}

async function readAll(path: string): Promise<{ name: string; data: Buffer }[]> {
  const zip = await openZip(path);
  const out: { name: string; data: Buffer }[] = [];
  try {
    for await (const entry of zipEntries(zip)) out.push({ name: entry.fileName, data: await readZipEntry(zip, entry) });
  } finally {
    zip.close();
  }
  return out;
}

/** The manifest of a light checkpoint zip, or null when the zip is a complete model. */
export async function readHeadCheckpointManifest(zipPath: string): Promise<HeadCheckpointManifest | null> {
  const zip = await openZip(zipPath);
  try {
    for await (const entry of zipEntries(zip)) {
      if (entry.fileName !== HEAD_CHECKPOINT_FILE) continue;
      const m = JSON.parse((await readZipEntry(zip, entry, 1 << 20)).toString('utf8')) as HeadCheckpointManifest;
      if (m.kind !== HEAD_CHECKPOINT_KIND || m.version !== 1) throw new Error(`${basename(zipPath)}: not a graft head checkpoint (kind ${m.kind}, version ${m.version})`);
      return m;
    }
    return null;
  } finally {
    zip.close();
  }
}

/**
 * Writes the complete model of a light checkpoint to `outZip`. `templatePath` defaults to the
 * template's file beside the checkpoint; its sha256 must be the one the checkpoint names.
 */
export async function assembleHeadCheckpoint(checkpointZip: string, outZip: string, templatePath?: string): Promise<{ bytes: number }> {
  const files = await readAll(checkpointZip);
  const get = (name: string) => files.find((f) => f.name === name)?.data;
  const manifestBytes = get(HEAD_CHECKPOINT_FILE);
  if (!manifestBytes) throw new Error(`${basename(checkpointZip)} is not a head checkpoint (no ${HEAD_CHECKPOINT_FILE})`);
  const manifest = JSON.parse(manifestBytes.toString('utf8')) as HeadCheckpointManifest;
  const head = get(HEAD_WEIGHTS_FILE);
  const training = get('training.json');
  if (!head || !training) throw new Error(`${basename(checkpointZip)} lacks ${HEAD_WEIGHTS_FILE} or training.json`);
  const template = templatePath ?? join(dirname(checkpointZip), manifest.template.file);
  const templateBytes = await readFile(template);
  const sha = createHash('sha256').update(templateBytes).digest('hex');
  if (sha !== manifest.template.sha256) throw new Error(`the frozen-base template ${manifest.template.file} has sha256 ${sha}, not the checkpoint's ${manifest.template.sha256}`);
  const entries = await readAll(template);
  const out: ZipInput[] = entries.map((e) => {
    if (e.name === 'training.json') return { name: e.name, data: training };
    if (e.name !== 'weights.bin') return e;
    const weights = Buffer.from(e.data);
    let at = 0;
    for (const w of manifest.weights) {
      if (w.offset + w.bytes > weights.length) throw new Error(`head weight ${w.name} lies outside the template's weights.bin`);
      head.copy(weights, w.offset, at, at + w.bytes);
      at += w.bytes;
    }
    if (at !== head.length) throw new Error(`head.bin has ${head.length} bytes, the manifest ${at}`);
    return { name: e.name, data: weights };
  });
  return { bytes: await writeZip(outZip, out) };
}
