/** Starts the base inspector in a child process and waits for its one-line answer. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Preprocessing } from '@graft/contracts';
import type { BaseInspection } from '@graft/engine';
import type { TextBaseClaim, TextBaseInspection } from '@graft/engine/onnx-text';
import type { UseBaseInspection } from '@graft/engine/use-text';

const CHILD = fileURLToPath(new URL('./inspect-base-child.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');
const TIMEOUT_MS = 180_000;

/** `detail`: why a hosted model was not fetched, for the log only (the message says less, on purpose). */
export type Answer<T> = { ok: true; result: T } | { ok: false; code: string; message: string; param?: string; detail?: string };

/** What every inspection needs: the byte bound, and for hosted models the outbound allow-list and per-request bound. */
export interface InspectLimits {
  maxBytes: number;
  /** OUTBOUND_ALLOWLIST */
  allow: string;
  timeoutMs: number;
}

function runChild<T>(req: object): Promise<Answer<T>> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', TSX, CHILD, JSON.stringify(req)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const line = out.trim().split('\n').at(-1) ?? '';
      try {
        const parsed = JSON.parse(line) as { result?: T; error?: { code: string; message: string; param?: string; detail?: string } };
        if (parsed.result) return resolve({ ok: true, result: parsed.result });
        if (parsed.error) return resolve({ ok: false, ...parsed.error });
      } catch {
        /* fall through */
      }
      resolve({ ok: false, code: 'invalid_base_model', message: `The model could not be inspected (${signal ?? `exit ${code}`}): ${err.trim().split('\n').at(-1) ?? 'no output'}` });
    });
  });
}

export function inspectBaseInChild(req: InspectLimits & { dir: string; zip?: string; url?: string; featureLayer: string; preprocessing: Preprocessing }): Promise<Answer<BaseInspection>> {
  return runChild<BaseInspection>({ task: 'image-classification', ...req });
}

/** An ONNX text encoder's folder (zip or URL) unpacked into `dir`, reduced to what the base needs and checked. */
export function inspectTextBaseInChild(req: TextBaseClaim & InspectLimits & { dir: string; zip?: string; url?: string }): Promise<Answer<TextBaseInspection>> {
  return runChild<TextBaseInspection>({ task: 'text-classification', ...req });
}

/** A USE-style tfjs graph by URL (model.json and vocab.json) fetched into `dir` and checked. */
export function inspectGraphTextBaseInChild(req: InspectLimits & { dir: string; url: string; vocabUrl: string; maxLength?: number; outputNode?: string }): Promise<Answer<UseBaseInspection>> {
  return runChild<UseBaseInspection>({ task: 'text-graph', ...req });
}
