/** A child task entry for the ChildTaskPool tests: answers, refuses, hangs, allocates or crashes on request. */
import { GraftError } from '@graft/contracts';
import { serveChildTasks } from '../../src/util/child-tasks.ts';

export type FixtureRequest = { kind: 'echo'; value: unknown } | { kind: 'refuse' } | { kind: 'throw' } | { kind: 'hang' } | { kind: 'buffers'; mb: number } | { kind: 'heap' } | { kind: 'exit' };

const held: unknown[] = [];

serveChildTasks(async (req: FixtureRequest) => {
  switch (req.kind) {
    case 'echo':
      return { value: req.value, pid: process.pid };
    case 'refuse':
      throw new GraftError('unreadable_entry', 'Entry "a/b.png" cannot be read.', 'file');
    case 'throw':
      throw new Error('a bug');
    case 'hang':
      for (;;); // a decoder stuck in a loop: only a kill ends it
    case 'buffers':
      // Array buffers, which V8's heap bound does not count: the resident-set bound must stop this.
      for (let i = 0; i < req.mb; i++) held.push(Buffer.alloc(2 ** 20, 1));
      await new Promise((r) => setTimeout(r, 60_000));
      return null;
    case 'heap':
      for (;;) held.push({ a: [1, 2, 3], s: `${Math.random()}` });
    case 'exit':
      process.exit(3);
  }
});
