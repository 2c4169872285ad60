/** The worker thread of `thread.ts`: one check, one answer. */
import { GraftError } from '@graft/contracts';
import { parentPort, workerData } from 'node:worker_threads';
import { checkTextDataset } from './check.ts';
import type { ThreadAnswer, ThreadCheckRequest } from './thread.ts';
import { openTokenCounter } from './token-counter.ts';

const req = workerData as ThreadCheckRequest;
let answer: ThreadAnswer;
try {
  const tokenCounter = req.tokenizer ? await openTokenCounter(req.tokenizer) : null;
  answer = { ok: true, report: await checkTextDataset({ ...req, tokenCounter }) };
} catch (err) {
  answer =
    err instanceof GraftError
      ? { ok: false, error: { code: err.code, message: err.message, param: err.param } }
      : { ok: false, unexpected: (err as Error)?.stack ?? String(err) };
}
parentPort!.postMessage(answer);
