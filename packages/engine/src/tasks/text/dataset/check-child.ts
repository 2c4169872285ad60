/** The child process of `TextCheckPool`: one check at a time, one answer each. */
import { serveChildTasks } from '../../../util/child-tasks.ts';
import { checkTextDataset } from './check.ts';
import type { TextCheckRequest } from './check-pool.ts';
import { openTokenCounter } from './token-counter.ts';

serveChildTasks(async (req: TextCheckRequest) => {
  const tokenCounter = req.tokenizer ? await openTokenCounter(req.tokenizer) : null;
  return checkTextDataset({ ...req, tokenCounter });
});
