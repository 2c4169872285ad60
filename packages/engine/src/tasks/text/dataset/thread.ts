/**
 * Runs `checkTextDataset` in a worker thread, so that reading, checking and hashing a large file
 * never blocks the caller's event loop (the API's). One thread per check, ended when it answers;
 * a GraftError thrown in the thread is thrown again here with its code, message and param.
 */
import { GraftError, type ErrorCode } from '@graft/contracts';
import { Worker } from 'node:worker_threads';
import type { CheckTextDatasetOptions, TextDatasetReport } from './check.ts';
import type { TokenizerSpec } from './token-counter.ts';

export interface ThreadCheckRequest extends Omit<CheckTextDatasetOptions, 'tokenCounter'> {
  tokenizer: TokenizerSpec | null;
}

export type ThreadAnswer =
  | { ok: true; report: TextDatasetReport }
  | { ok: false; error: { code: ErrorCode; message: string; param?: string | undefined } }
  | { ok: false; unexpected: string };

const ENTRY = new URL('./thread-entry' + (import.meta.url.endsWith('.ts') ? '.ts' : '.js'), import.meta.url);

/** A worker on `ENTRY`; TypeScript sources are loaded through tsx, as the main thread's are. */
function startWorker(workerData: ThreadCheckRequest): Worker {
  const options = { workerData, resourceLimits: { maxOldGenerationSizeMb: 1024 } };
  if (!ENTRY.pathname.endsWith('.ts')) return new Worker(ENTRY, options);
  const boot = `import { register } from ${JSON.stringify(import.meta.resolve('tsx/esm/api'))}; register(); await import(${JSON.stringify(ENTRY.href)});`;
  return new Worker(new URL(`data:text/javascript,${encodeURIComponent(boot)}`), options);
}

export function checkTextDatasetInThread(req: ThreadCheckRequest, signal?: AbortSignal): Promise<TextDatasetReport> {
  return new Promise((resolve, reject) => {
    const worker = startWorker(req);
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      fn();
      void worker.terminate();
    };
    const onAbort = () => settle(() => reject(signal?.reason ?? new Error('aborted')));
    signal?.addEventListener('abort', onAbort, { once: true });
    worker.once('message', (m: ThreadAnswer) =>
      settle(() => {
        if (m.ok) resolve(m.report);
        else if ('error' in m) reject(new GraftError(m.error.code, m.error.message, m.error.param));
        else reject(new Error(`text dataset check failed: ${m.unexpected}`));
      }),
    );
    worker.once('error', (err) => settle(() => reject(err)));
    worker.once('exit', (code) => settle(() => reject(new Error(`text dataset check thread exited (${code}) without an answer`))));
  });
}
