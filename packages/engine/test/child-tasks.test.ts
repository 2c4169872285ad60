/**
 * ChildTaskPool on real child processes: answers and GraftErrors come back as they were; a task past
 * its time limit, its resident-set bound or V8's heap bound, or whose child crashes, is rejected with
 * `dataset_check_failed` and its child is gone; an aborted task's child is killed; the pool keeps
 * serving afterwards.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GraftError } from '@graft/contracts';
import { ChildTaskAborted, ChildTaskPool, ChildTaskStopped, type ChildTaskReport } from '../src/util/child-tasks.ts';
import type { FixtureRequest } from './child-task-fixture/entry.ts';

const ENTRY = new URL('./child-task-fixture/entry.ts', import.meta.url);
const LIMITS = { maxOldSpaceMb: 64, maxRssMb: 256, timeoutMs: 20_000 };

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function stopped(p: Promise<unknown>, reason: ChildTaskStopped['reason']): Promise<ChildTaskStopped> {
  const err = await p.then(
    () => assert.fail('expected the task to be stopped'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ChildTaskStopped, String(err));
  assert.equal(err.code, 'dataset_check_failed');
  assert.equal(err.reason, reason, err.detail);
  return err;
}

describe('ChildTaskPool', () => {
  test('answers, GraftErrors with code and param, other errors; a warm child is reused, idle children end', async () => {
    const pool = new ChildTaskPool<FixtureRequest, { value: unknown; pid: number }>(ENTRY, { name: 'test task', maxChildren: 2, idleMs: 300, ...LIMITS });
    try {
      const reports: ChildTaskReport[] = [];
      const a = await pool.run({ kind: 'echo', value: { n: 1, list: [1, 2], nothing: undefined } }, { onReport: (r) => reports.push(r) });
      assert.deepEqual(a.value, { n: 1, list: [1, 2], nothing: undefined });
      assert.notEqual(a.pid, process.pid);
      const b = await pool.run({ kind: 'echo', value: 2 }, { onReport: (r) => reports.push(r) });
      assert.equal(b.pid, a.pid, 'the idle child took the next task');
      assert.deepEqual(reports.map((r) => [r.outcome, r.coldStart]), [['answered', true], ['answered', false]]);
      assert.ok(reports[0]!.childPeakRssBytes! > 10 * 2 ** 20, `child peak ${reports[0]!.childPeakRssBytes}`);
      const refused = await pool.run({ kind: 'refuse' }).catch((e: unknown) => e);
      assert.ok(refused instanceof GraftError && !(refused instanceof ChildTaskStopped));
      assert.deepEqual([refused.code, refused.message, refused.param], ['unreadable_entry', 'Entry "a/b.png" cannot be read.', 'file']);
      await assert.rejects(pool.run({ kind: 'throw' }), /test task failed: Error: a bug/);
      for (let i = 0; i < 60 && pool.size > 0; i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(pool.size, 0, 'idle children end');
      assert.ok(!alive(a.pid));
    } finally {
      await pool.close();
    }
  });

  test('with a spare: each task gets a process that ran nothing before, already started', async () => {
    const pool = new ChildTaskPool<FixtureRequest, { value: unknown; pid: number }>(ENTRY, { name: 'test task', maxChildren: 2, idleMs: 0, spareMs: 10_000, ...LIMITS });
    try {
      const reports: ChildTaskReport[] = [];
      const a = await pool.run({ kind: 'echo', value: 1 }, { onReport: (r) => reports.push(r) });
      await new Promise((r) => setTimeout(r, 1500)); // the spare starts meanwhile
      const b = await pool.run({ kind: 'echo', value: 2 }, { onReport: (r) => reports.push(r) });
      assert.notEqual(b.pid, a.pid);
      assert.ok(!alive(a.pid), 'a used child ends');
      assert.deepEqual(reports.map((r) => r.coldStart), [true, false]);
    } finally {
      await pool.close();
    }
  });

  test('a task past its time limit, its resident-set bound or the heap bound, or whose child exits, is stopped; the pool goes on', async () => {
    const pool = new ChildTaskPool<FixtureRequest, unknown>(ENTRY, { name: 'test task', maxChildren: 4, idleMs: 0, ...LIMITS });
    try {
      const t0 = Date.now();
      const hang = new ChildTaskPool<FixtureRequest, unknown>(ENTRY, { name: 'test task', maxChildren: 1, idleMs: 0, ...LIMITS, timeoutMs: 1500 });
      const timedOut = await stopped(hang.run({ kind: 'hang' }), 'timeout');
      assert.match(timedOut.message, /did not finish within its time limit \(2 s\)/);
      assert.ok(Date.now() - t0 < 15_000);
      await hang.close();
      const rss = await stopped(pool.run({ kind: 'buffers', mb: 600 }), 'memory');
      assert.match(rss.message, /needed more memory than it may use \(256 MB\)/);
      await stopped(pool.run({ kind: 'heap' }), 'memory');
      await stopped(pool.run({ kind: 'exit' }), 'crashed');
      assert.equal(pool.size, 0);
      assert.equal(((await pool.run({ kind: 'echo', value: 'still here' })) as { value: string }).value, 'still here');
    } finally {
      await pool.close();
    }
  });

  test('an aborted task kills its child; one aborted while waiting for a child leaves the queue', async () => {
    const pool = new ChildTaskPool<FixtureRequest, unknown>(ENTRY, { name: 'test task', maxChildren: 1, idleMs: 60_000, ...LIMITS });
    try {
      const first = new AbortController();
      const second = new AbortController();
      const reports: ChildTaskReport[] = [];
      const running = pool.run({ kind: 'hang' }, { signal: first.signal, onReport: (r) => reports.push(r) });
      const waiting = pool.run({ kind: 'echo', value: 1 }, { signal: second.signal });
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(pool.stats, { children: 1, busy: 1, waiting: 1 });
      second.abort();
      await assert.rejects(waiting, ChildTaskAborted);
      assert.equal(pool.stats.waiting, 0);
      first.abort();
      await assert.rejects(running, ChildTaskAborted);
      assert.equal(pool.size, 0, 'the child is gone');
      assert.deepEqual(reports.map((r) => r.outcome), ['aborted']);
      await assert.rejects(pool.run({ kind: 'echo', value: 1 }, { signal: AbortSignal.abort() }), ChildTaskAborted);
    } finally {
      await pool.close();
    }
  });
});
