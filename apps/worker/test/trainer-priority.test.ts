/**
 * The training process runs at TRAINER_NICE: the worker forks it, and it lowers its own priority
 * before the engine loads, so it yields the CPU to an API or a worker on the same host.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { forkTrainer } from '../src/trainer/run-training.ts';

/** Niceness of every thread of a process (field 19 of /proc/<pid>/task/<tid>/stat). */
async function threadNiceness(pid: number): Promise<number[]> {
  const tids = await readdir(`/proc/${pid}/task`);
  const out: number[] = [];
  for (const tid of tids) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => null);
    if (!stat) continue;
    // Fields after the command name (in parentheses, which may hold spaces): state is field 3.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.push(Number(fields[19 - 3]));
  }
  return out;
}

test('a training process forked with TRAINER_NICE 10 runs at niceness 10', { skip: process.platform !== 'linux' && 'reads /proc' }, async () => {
  const child = forkTrainer({ maxOldSpaceMb: 512, nice: 10 });
  try {
    // The priority is set as the entry starts loading: wait for the process to get there.
    const deadline = Date.now() + 30_000;
    let main: number | undefined;
    while (Date.now() < deadline) {
      main = (await threadNiceness(child.pid!))[0];
      if (main === 10) break;
      await sleep(100);
    }
    assert.equal(main, 10, 'the main thread (the one that trains) is niced');
  } finally {
    child.kill('SIGKILL');
  }
});
