/**
 * Resume from a checkpoint on graft's MNIST base (head phase, then conv2 unfrozen), early stopping
 * on: a job resumed from a checkpoint of either phase, at an epoch boundary or mid-epoch, or from
 * the checkpoint a hand-back wrote, ends with the same metrics and model as the uninterrupted run
 * (same seed, same backend).
 */
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { fineTune, readResumeState, TrainingCancelled, type CheckpointInfo, type FineTuneOutcome } from '../src/index.ts';
import type { EpochResult } from '../src/train/phase-runner.ts';
import { bundleFiles, mnistBase, specFor } from './train-helpers.ts';

const SAMPLE = fileURLToPath(new URL('../../../samples/digits-5-9.zip', import.meta.url));
const base = mnistBase();
let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'graft-resume-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const body = { hyperparameters: { epochs: 4, fineTuneEpochs: 3, batchSize: 16 }, trainableLayers: 1, earlyStopping: { patience: 2, minDelta: 0, restoreBestWeights: true } } as const;

interface Run {
  out: FineTuneOutcome;
  epochs: EpochResult[];
  checkpoints: CheckpointInfo[];
  events: string[];
}

async function run(name: string, extra: { checkpointEvery?: number; resume?: CheckpointInfo; handBackAt?: (e: { phase: string; epoch: number; batch: number }) => boolean } = {}): Promise<Run> {
  const epochs: EpochResult[] = [];
  const checkpoints: CheckpointInfo[] = [];
  const events: string[] = [];
  const handBack = new AbortController();
  const resume = extra.resume ? { state: await readResumeState(extra.resume.resumePath!), checkpointId: `ck_${name}` } : undefined;
  const out = await fineTune({
    base,
    datasetPath: SAMPLE,
    spec: specFor({ ...body, ...(extra.checkpointEvery ? { checkpointEvery: extra.checkpointEvery } : {}) }),
    outDir: join(dir, name),
    handBack: handBack.signal,
    ...(resume ? { resume } : {}),
    hooks: {
      onEpoch: (m) => { epochs.push(m); },
      onEvent: (e) => { events.push(`${e.type}: ${e.message}`); },
      onBatch: (p) => { if (extra.handBackAt?.(p)) handBack.abort(); },
      onCheckpoint: async (c) => {
        // The worker moves checkpoint files away; keep a copy of the resume state as it would.
        if (c.resumePath) await copyFile(c.resumePath, `${c.resumePath}.kept`);
        checkpoints.push({ ...c, resumePath: c.resumePath && `${c.resumePath}.kept` });
      },
    },
  });
  return { out, epochs, checkpoints, events };
}

const lastWeights = async (r: Run) => (await bundleFiles(r.out.modelZipPath)).get('weights.bin')!;

let full: Run;

test('uninterrupted: every checkpoint of the head and fine-tune phases carries a resume state', async () => {
  full = await run('full');
  assert.ok(full.checkpoints.length >= 5, `${full.checkpoints.length} checkpoints`);
  assert.ok(full.checkpoints.every((c) => c.resumePath), 'each checkpoint has a resume state');
  assert.ok(full.checkpoints.some((c) => c.phase === 'fine-tune'), 'phase 2 ran');
  console.log(`uninterrupted: ${full.epochs.map((e) => `${e.phase} ${e.epoch} val_loss ${e.valLoss?.toFixed(5)}`).join('; ')}; val acc ${full.out.result.valAccuracy}`);
});

for (const pick of [
  { what: 'the head phase (epoch 2)', phase: 'head', epoch: 2 },
  { what: 'the last head epoch (phase 2 not started)', phase: 'head', epoch: 4 },
  { what: 'the fine-tune phase', phase: 'fine-tune', epoch: 5 },
]) {
  test(`resumed from ${pick.what}: the same epochs after it, the same result and model`, async () => {
    const ck = full.checkpoints.find((c) => c.phase === pick.phase && c.epoch === pick.epoch);
    assert.ok(ck, `a checkpoint at ${pick.phase} epoch ${pick.epoch}`);
    const resumed = await run(`from-${pick.phase}-${pick.epoch}`, { resume: ck });
    assert.ok(resumed.events.some((e) => e.startsWith('resumed: Resumed from checkpoint')), resumed.events.join('\n'));
    assert.deepEqual(resumed.epochs.map((e) => e.epoch), full.epochs.filter((e) => e.epoch > pick.epoch).map((e) => e.epoch), 'only the epochs after the checkpoint are trained');
    const strip = (e: EpochResult) => ({ ...e, durationMs: 0 });
    assert.deepEqual(resumed.epochs.map(strip), full.epochs.filter((e) => e.epoch > pick.epoch).map(strip));
    assert.deepEqual(resumed.out.result.valAccuracy, full.out.result.valAccuracy);
    assert.deepEqual(resumed.out.result.valLoss, full.out.result.valLoss);
    assert.ok((await lastWeights(resumed)).equals(await lastWeights(full)), 'the exported weights are identical');
  });
}

test('mid-epoch (checkpointEvery batches) and hand-back checkpoints resume where they were taken', async () => {
  const every = await run('every-3', { checkpointEvery: 3 });
  const mid = every.checkpoints.find((c) => c.phase === 'head' && c.epoch === 2 && c.batch !== null);
  assert.ok(mid, every.checkpoints.map((c) => `${c.phase} ${c.epoch} ${c.batch}`).join(', '));
  const resumed = await run('from-mid', { checkpointEvery: 3, resume: mid });
  assert.deepEqual(resumed.out.result.valLoss, every.out.result.valLoss);
  assert.ok((await lastWeights(resumed)).equals(await lastWeights(every)));

  // Hand-back in phase 2: a checkpoint at that batch end, then TrainingCancelled.
  await assert.rejects(run('leaving', { handBackAt: (p) => p.phase === 'fine-tune' && p.epoch === 6 && p.batch === 2 }), TrainingCancelled);
  // Its checkpoints stay in its outDir: the hand-back's is that batch's.
  const files = await readdir(join(dir, 'leaving', 'checkpoints'));
  assert.ok(files.includes('fine-tune-e6-b2.resume'), files.join(', '));
  const handedBack = { ...full.checkpoints[0]!, resumePath: join(dir, 'leaving', 'checkpoints', 'fine-tune-e6-b2.resume') };
  const after = await run('after-hand-back', { resume: handedBack });
  assert.deepEqual(after.out.result.valLoss, full.out.result.valLoss);
  assert.ok((await lastWeights(after)).equals(await lastWeights(full)), 'the same model as without the hand-back');
});
