/** A check thread of `thread.ts`: one request at a time, one answer each. */
import { GraftError } from '@graft/contracts';
import { parentPort } from 'node:worker_threads';
import { checkTextDataset } from './check.ts';
import type { ThreadAnswer, ThreadCheckRequest } from './thread.ts';
import { openTokenCounter } from './token-counter.ts';

async function answer(req: ThreadCheckRequest): Promise<ThreadAnswer> {
  try {
    const tokenCounter = req.tokenizer ? await openTokenCounter(req.tokenizer) : null;
    return { ok: true, report: await checkTextDataset({ ...req, tokenCounter }) };
  } catch (err) {
    return err instanceof GraftError
      ? { ok: false, error: { code: err.code, message: err.message, param: err.param } }
      : { ok: false, unexpected: (err as Error)?.stack ?? String(err) };
  }
}

parentPort!.on('message', (req: ThreadCheckRequest) => void answer(req).then((a) => parentPort!.postMessage(a)));
