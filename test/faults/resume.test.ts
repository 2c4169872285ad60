/**
 * Resume from the last checkpoint, with real processes (a Postgres and a Redis of this test's own,
 * worker processes that are SIGKILLed or SIGTERMed):
 * - a worker killed after two checkpoints: the next worker resumes from the last one recorded,
 *   redoes at most one epoch, records no metric, event, checkpoint or progress row twice, and ends
 *   within ±1 point of an uninterrupted run of the same spec and seed (run here too);
 * - SIGTERM: the worker writes a fresh checkpoint, hands the job back and exits 0 within its grace
 *   period; the next worker resumes from that checkpoint and the job succeeds.
 */
import { createDb, type Db } from '@graft/db';
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { waitFor } from '../helpers/processes.ts';
import { FaultStack } from './stack.ts';

const BOUNDS = { RECONCILE_INTERVAL_MS: '1000', JOB_HEARTBEAT_TTL_MS: '2000', WORKER_LOCK_MS: '4000' };

const stack = new FaultStack('resume', BOUNDS);
const { workers, call, newWorker, stopWorker } = stack;
let db: Db;
before(async () => {
  await stack.start();
  db = createDb(stack.pg.url);
});
after(async () => {
  await db?.$disconnect();
  await stack.destroy();
});

interface Ck { id: string; phase: string; epoch: number; batch: number | null; createdAt: string }
interface Ev { id: string; type: string; message: string; data: any }
const job = async (id: string) => (await call('GET', `/v1/fine-tunes/${id}`)).body;
const finished = (id: string, timeoutMs = 150_000) =>
  waitFor(`job ${id} to finish`, async () => {
    const j = await job(id).catch(() => null);
    return j && ['succeeded', 'failed', 'cancelled'].includes(j.status) ? j : null;
  }, timeoutMs, 250);
const metricsOf = async (id: string) => (await call('GET', `/v1/fine-tunes/${id}/metrics`)).body.data as { epoch: number; loss: number; valLoss: number | null }[];
const checkpointsOf = async (id: string) => (await call('GET', `/v1/fine-tunes/${id}/checkpoints`)).body.data as Ck[];
async function eventsOf(id: string): Promise<Ev[]> {
  const out: Ev[] = [];
  for (let after = ''; ;) {
    const page = (await call('GET', `/v1/fine-tunes/${id}/events?limit=100${after ? `&after=${after}` : ''}`)).body;
    out.push(...(page.data as Ev[]));
    if (!page.hasMore) return out;
    after = page.nextCursor;
  }
}
/**
 * Head phase of 3 epochs, then conv2 unfrozen for 2: five epochs, a checkpoint each. Batches of 2 (120 an
 * epoch): on cached activations, batches of 8 let a quiet machine finish all five epochs between the test's
 * look at the progress and the kill.
 */
const spec = () => ({
  baseModel: 'bm_mnist_cnn', dataset: stack.datasetId, seed: 5, trainableLayers: 1,
  earlyStopping: { patience: 3, minDelta: 0, restoreBestWeights: true },
  hyperparameters: { epochs: 3, fineTuneEpochs: 2, batchSize: 2 },
});

/** Nothing recorded twice: one metric, one epoch event and one checkpoint per epoch, no repeated trainer event or progress row. */
async function assertNoDuplicates(id: string, epochs: number) {
  const all = Array.from({ length: epochs }, (_, i) => i + 1);
  assert.deepEqual((await metricsOf(id)).map((m) => m.epoch), all, 'one metric row per epoch');
  const events = await eventsOf(id);
  assert.deepEqual(events.filter((e) => e.type === 'epoch').map((e) => e.data.epoch), all, 'one epoch event per epoch, in order');
  const repeated = events.filter((e) => e.type !== 'status' && e.type !== 'resumed').map((e) => `${e.type}: ${e.message}`).filter((k, i, a) => a.indexOf(k) !== i);
  assert.deepEqual(repeated, [], 'no trainer event recorded twice');
  const cks = await checkpointsOf(id);
  const keys = cks.map((c) => `${c.phase}/${c.epoch}/${c.batch}`);
  assert.equal(new Set(keys).size, keys.length, `no checkpoint row twice: ${keys.join(', ')}`);
  const progress = await db.$queryRaw<{ n: bigint }[]>`
    SELECT count(*) AS n FROM (SELECT phase, epoch, batch FROM fine_tune_progress WHERE fine_tune_id = ${id} GROUP BY 1, 2, 3 HAVING count(*) > 1) d`;
  assert.equal(Number(progress[0]!.n), 0, 'no progress row twice');
  return { events, cks };
}

test('worker SIGKILLed after two checkpoints: the next worker resumes from the last one, nothing recorded twice, the result of an uninterrupted run', async () => {
  const started = Date.now();
  const victim = await newWorker('worker-a');
  const r = await call('POST', '/v1/fine-tunes', spec());
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const id = r.body.id as string;
  // Killed mid-epoch, some batches past its second checkpoint (those are trained and reported again).
  await waitFor('two checkpoints and 10 batches more', async () => {
    const cks = await checkpointsOf(id);
    const p = (await job(id)).progress;
    return cks.length >= 2 && p && p.epoch > cks.at(-1)!.epoch && p.batch >= 10;
  }, 150_000, 100);
  await stopWorker(victim, 'SIGKILL');
  const cksBefore = await checkpointsOf(id);
  const epochsBefore = (await metricsOf(id)).map((m) => m.epoch);
  const last = cksBefore.at(-1)!;
  const progressBefore = (await job(id)).progress;
  assert.ok(epochsBefore.length < 5, `killed before the end (epochs recorded: ${epochsBefore.join(', ')})`);

  await newWorker('worker-b');
  const j = await finished(id);
  assert.equal(j.status, 'succeeded', JSON.stringify(j.error));
  const { events } = await assertNoDuplicates(id, 5);
  const resumed = events.filter((e) => e.type === 'resumed');
  assert.equal(resumed.length, 1, events.map((e) => `${e.type}: ${e.message}`).join('\n'));
  assert.equal(resumed[0]!.data.checkpoint, last.id, 'resumed from the last checkpoint recorded');
  assert.match(resumed[0]!.message, new RegExp(`Resumed from checkpoint ${last.id} at phase ${last.phase}, epoch ${last.epoch}`));
  const redone = Math.max(...epochsBefore) - resumed[0]!.data.epoch;
  assert.ok(redone <= 1, `${redone} epochs redone (recorded before the kill: ${epochsBefore.join(', ')}; resumed after epoch ${resumed[0]!.data.epoch})`);
  const interruptedMs = Date.now() - started;

  // The same spec and seed, uninterrupted.
  const ref = await call('POST', '/v1/fine-tunes', spec());
  const refJob = await finished(ref.body.id);
  assert.equal(refJob.status, 'succeeded', JSON.stringify(refJob.error));
  const a = j.result.valAccuracy as number;
  const b = refJob.result.valAccuracy as number;
  const same = JSON.stringify((await metricsOf(id)).map((m) => [m.loss, m.valLoss])) === JSON.stringify((await metricsOf(ref.body.id)).map((m) => [m.loss, m.valLoss]));
  console.log(`killed at epoch ${progressBefore.epoch} batch ${progressBefore.batch} after checkpoint ${last.phase}/${last.epoch} (epochs recorded ${epochsBefore.join(',')}), ${redone} whole epoch(s) redone; ` +
    `val accuracy resumed ${a} vs uninterrupted ${b}; every epoch's loss and val loss identical: ${same}; interrupted job took ${interruptedMs} ms`);
  assert.ok(Math.abs(a - b) <= 0.01, `val accuracy ${a} vs ${b}`);
});

test('SIGTERM: a fresh checkpoint, the job handed back, exit 0 within the grace period; the next worker resumes from it and the job succeeds', async () => {
  const grace = 20_000;
  for (const w of [...workers]) await stopWorker(w, 'SIGKILL'); // only these two workers take the job
  const leaving = await newWorker('worker-c', { WORKER_SHUTDOWN_GRACE_MS: String(grace) });
  const r = await call('POST', '/v1/fine-tunes', spec());
  const id = r.body.id as string;
  await waitFor('the first checkpoint', async () => (await checkpointsOf(id)).length >= 1, 150_000, 100);
  const before = await checkpointsOf(id);
  const asked = Date.now();
  const code = await stopWorker(leaving, 'SIGTERM');
  const tookMs = Date.now() - asked;
  assert.equal(code, 0, leaving.output().slice(-3000));
  assert.ok(tookMs <= grace, `the worker took ${tookMs} ms to leave (grace ${grace} ms)`);
  const back = await job(id);
  assert.equal(back.status, 'queued', JSON.stringify(back));
  const handedBack = (await eventsOf(id)).filter((e) => e.type === 'status' && e.data?.status === 'queued' && e.data?.code === 'worker_shutdown');
  assert.equal(handedBack.length, 1, 'a re-queued event');
  const after = await checkpointsOf(id);
  assert.ok(after.length > before.length, 'a checkpoint written on SIGTERM');
  const fresh = after.at(-1)!;
  assert.ok(Date.parse(fresh.createdAt) >= asked - 1_000, `the last checkpoint (${fresh.createdAt}) is the one written on SIGTERM`);

  await newWorker('worker-d');
  const j = await finished(id);
  assert.equal(j.status, 'succeeded', JSON.stringify(j.error));
  const { events } = await assertNoDuplicates(id, 5);
  const resumed = events.filter((e) => e.type === 'resumed');
  assert.equal(resumed.length, 1);
  assert.equal(resumed[0]!.data.checkpoint, fresh.id, 'resumed from the checkpoint written on SIGTERM');
  console.log(`SIGTERM: worker left in ${tookMs} ms (grace ${grace} ms); handed back with checkpoint ${fresh.phase}/${fresh.epoch}${fresh.batch ? ` batch ${fresh.batch}` : ''}; ${resumed[0]!.message}`);
});
