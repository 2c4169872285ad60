/**
 * graft encoder's files: a folder with model.json + weights.bin (a tfjs layers model using the
 * custom layers of layers.ts), encoder.json (its architecture, pooling and maximum length) and
 * the tokenizer (tokenizer.json + tokenizer_config.json). `models/text/graft-encoder/` is one.
 */
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { directoryLoader, directorySaver } from '../../../bases/model-io.ts';
import { configOf, validateConfig, type GraftEncoderConfig } from './architecture.ts';
import { CUSTOM_LAYER_CLASSES } from './layers.ts';
import { registerWasmTextGradientKernels } from './wasm-segment-sum.ts';

export const ENCODER_FILE = 'encoder.json';
export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json'] as const;

export interface EncoderFile {
  kind: 'graft-encoder';
  version: 1;
  config: GraftEncoderConfig;
  /** What the folder's tokenizer is and where the model came from (free-form, for people). */
  pretraining?: Record<string, unknown>;
}

export async function saveGraftEncoder(model: tf.LayersModel, dir: string, extra: { pretraining?: Record<string, unknown> } = {}): Promise<void> {
  await mkdir(dir, { recursive: true });
  await model.save(directorySaver(dir));
  const file: EncoderFile = { kind: 'graft-encoder', version: 1, config: configOf(model), ...(extra.pretraining ? { pretraining: extra.pretraining } : {}) };
  await writeFile(join(dir, ENCODER_FILE), `${JSON.stringify(file, null, 2)}\n`);
}

export async function readEncoderFile(dir: string): Promise<EncoderFile> {
  let parsed: EncoderFile;
  try {
    parsed = JSON.parse(await readFile(join(dir, ENCODER_FILE), 'utf8')) as EncoderFile;
  } catch (err) {
    throw new Error(`${join(dir, ENCODER_FILE)} cannot be read (${(err as Error).message})`);
  }
  if (parsed?.kind !== 'graft-encoder' || parsed.version !== 1) throw new Error(`${join(dir, ENCODER_FILE)} is not a graft encoder description (kind "graft-encoder", version 1)`);
  validateConfig(parsed.config);
  return parsed;
}

/**
 * The encoder as a LayersModel (every layer trainable, as tfjs loads it; callers freeze). Checks that
 * model.json uses graft's custom layers and agrees with encoder.json.
 */
export async function loadGraftEncoderModel(dir: string): Promise<{ model: tf.LayersModel; file: EncoderFile }> {
  registerWasmTextGradientKernels();
  const file = await readEncoderFile(dir);
  const topology = await readFile(join(dir, 'model.json'), 'utf8');
  for (const cls of CUSTOM_LAYER_CLASSES) {
    if (!topology.includes(`"${cls}"`)) throw new Error(`${join(dir, 'model.json')} has no ${cls} layer: not a graft encoder`);
  }
  const model = await tf.loadLayersModel(await directoryLoader(dir));
  const actual = configOf(model);
  for (const k of ['vocabSize', 'maxLength', 'hidden', 'blocks', 'heads', 'ffn', 'norm', 'pooling'] as const) {
    if (actual[k] !== file.config[k]) {
      model.dispose();
      throw new Error(`model.json and encoder.json disagree on ${k} (${actual[k]} vs ${file.config[k]})`);
    }
  }
  return { model, file };
}
