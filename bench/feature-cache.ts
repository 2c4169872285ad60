/**
 * The feature cache on MobileNetV2 (224x224): a head epoch on cached features against an epoch that
 * runs the frozen base on every batch, and a second job reusing the cached features against the
 * first computing them. One process, one backend; the claim is the ratios.
 *
 *   node --import tsx bench/feature-cache.ts [--images 48]
 */
import { normalizeFineTune, type CreateFineTuneBody } from '@graft/contracts';
import { fineTune, initBackend, resolveCatalogBase, type TrainingEvent } from '@graft/engine';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { colourZip } from './lib/colour-zip.ts';

const i = process.argv.indexOf('--images');
const images = i > 0 ? Number(process.argv[i + 1]) : 48;
const backend = await initBackend();
const base = resolveCatalogBase('bm_mobilenet_v2')!;
const dir = await mkdtemp(join(tmpdir(), 'graft-bench-fc-'));
const zip = await colourZip(dir, images, 7);

const spec = (extra: Partial<CreateFineTuneBody>) =>
  normalizeFineTune({ baseModel: base.descriptor.id, dataset: 'bench', validationSplit: 0.25, earlyStopping: false, checkpointEvery: 1_000_000, ...extra } as CreateFineTuneBody, base.descriptor, 1);
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

async function job(name: string, s: ReturnType<typeof spec>, cacheDir: string | null) {
  const epochs: number[] = [];
  const events: TrainingEvent[] = [];
  const t = performance.now();
  await fineTune({ base, datasetPath: zip, spec: s, outDir: join(dir, name), cacheDir, hooks: { onEpoch: (m) => void epochs.push(m.durationMs), onEvent: (e) => void events.push(e) } });
  const features = events.filter((e) => e.type === 'features').at(-1);
  return { epochMs: mean(epochs), jobMs: performance.now() - t, featureMs: (features?.data?.ms as number | undefined) ?? null };
}

const cacheDir = join(dir, 'cache');
const cached = await job('cached', spec({ hyperparameters: { epochs: 5, batchSize: 8 } }), cacheDir);
const perBatch = await job('per-batch', spec({ hyperparameters: { epochs: 2, batchSize: 8 }, augmentation: { rotation: 1 } }), null);
const reused = await job('reused', spec({ hyperparameters: { epochs: 5, batchSize: 8 } }), cacheDir);

console.log(`backend ${backend.name}, ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), node ${process.version}; MobileNetV2 224x224, ${images} images (${images * 0.75} train)`);
console.log(`head epoch on cached features: ${cached.epochMs.toFixed(0)} ms; with the base run every batch: ${perBatch.epochMs.toFixed(0)} ms → ${(perBatch.epochMs / cached.epochMs).toFixed(1)}x`);
console.log(`feature step: computed ${cached.featureMs} ms, reused from the cache ${reused.featureMs} ms → ${((cached.featureMs ?? 0) / Math.max(1, reused.featureMs ?? 1)).toFixed(0)}x; whole 5-epoch job ${(cached.jobMs / 1000).toFixed(1)} s → ${(reused.jobMs / 1000).toFixed(1)} s`);
await rm(dir, { recursive: true, force: true });
