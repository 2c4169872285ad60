/**
 * Workers and what jobs need from them. A worker advertises its capabilities (backend, GPU and its
 * memory, RAM) in a Redis registry with a heartbeat; a job states what it needs (`resources`: a GPU
 * preference and the RAM it needs, estimated from its base unless given), and a worker that cannot
 * run a job hands it back to the queue before it starts (no attempt is used). Pure: the API, the
 * worker and the tests share these rules.
 */
import { Type, type Static } from 'typebox';
import { Literals, Page, Timestamp } from './common.ts';

export const GPU_PREFERENCES = ['required', 'preferred', 'any', 'never'] as const;
export type GpuPreference = (typeof GPU_PREFERENCES)[number];

export const ResourceRequest = Type.Object(
  {
    gpu: Type.Optional(Literals(GPU_PREFERENCES, {
      description:
        '`required`: only a GPU worker; `preferred`: a GPU worker when one is live (others take it after 60 s of waiting); `any`; ' +
        '`never`: only CPU workers (e.g. to reproduce a CPU run). Default: `preferred` for image bases of 96x96 or more, else `any`.',
    })),
    memoryMB: Type.Optional(Type.Integer({ minimum: 64, maximum: 1_048_576, description: 'RAM the training process needs; default: graft\'s estimate from the base, input size and batch size.' })),
  },
  { additionalProperties: false, title: 'ResourceRequest' },
);
export type ResourceRequest = Static<typeof ResourceRequest>;

export const Resources = Type.Object(
  {
    gpu: Literals(GPU_PREFERENCES),
    memoryMB: Type.Union([Type.Integer(), Type.Null()], { description: 'RAM a worker must offer per job; null on jobs created before graft recorded it (no check).' }),
    estimated: Type.Boolean({ description: 'true: `memoryMB` is graft\'s estimate; false: the request gave it.' }),
  },
  { title: 'Resources' },
);
export type Resources = Static<typeof Resources>;

/** How long a `preferred` job waits for a GPU worker before a CPU worker takes it. */
export const GPU_PREFERENCE_WAIT_MS = 60_000;

/**
 * RAM of a training process, in MiB. Calibrated on the measurements in bench/RESULTS.md: a process
 * with tfjs and the wasm runtime loaded peaks near 360 MiB before any model; MobileNetV2 at 224x224,
 * batch 32, peaks at 0.75 GiB, which puts the activations and gradients at about 20 floats per input
 * value of a batch. The feature cache adds 4 bytes per feature per example. A rough bound, meant to
 * keep a job off a worker that is clearly too small, not to pack workers tightly.
 */
export function estimateTrainingMemoryMB(base: { inputShape?: readonly number[]; featureShape?: readonly number[] }, batchSize: number, examples = 0): number {
  const MiB = 2 ** 20;
  const inputValues = (base.inputShape ?? []).reduce((a, b) => a * b, 1);
  const features = (base.featureShape ?? []).reduce((a, b) => a * b, 1);
  const activations = batchSize * inputValues * 4 * 20;
  const featureCache = examples * Math.max(features, 1) * 4;
  return Math.ceil(384 + (activations + featureCache) / MiB);
}

/** A base's default GPU preference: large image inputs gain from a GPU, small ones and text run well on CPU. */
export function defaultGpuPreference(base: { task?: string; inputShape?: readonly number[] }): GpuPreference {
  const [h = 0, w = 0] = base.inputShape ?? [];
  return base.task !== 'text-classification' && h * w >= 96 * 96 ? 'preferred' : 'any';
}

export function resolveResources(
  request: ResourceRequest | undefined,
  base: { task?: string; inputShape?: readonly number[]; featureShape?: readonly number[] },
  batchSize: number,
  examples?: number,
): Resources {
  return {
    gpu: request?.gpu ?? defaultGpuPreference(base),
    memoryMB: request?.memoryMB ?? estimateTrainingMemoryMB(base, batchSize, examples),
    estimated: request?.memoryMB === undefined,
  };
}

export const WorkerCapabilities = Type.Object(
  {
    backend: Type.String({ description: 'TensorFlow.js backend: `node-gpu`, `node`, `wasm` or `cpu`.' }),
    accelerator: Literals(['gpu', 'cpu'], { description: '`gpu` when it trains on a GPU (tfjs-node-gpu with a GPU visible, or WORKER_ACCELERATOR=gpu).' }),
    gpus: Type.Array(Type.Object({ name: Type.String(), memoryBytes: Type.Union([Type.Integer(), Type.Null()]) }), { description: 'As nvidia-smi lists them.' }),
    memoryBytes: Type.Integer({ description: 'RAM for training: the host\'s or the container\'s limit, or WORKER_MEMORY_MB.' }),
    memoryPerJobBytes: Type.Integer({ description: '`memoryBytes` / `concurrency`: what one job may use.' }),
    cpus: Type.Integer(),
    concurrency: Type.Integer({ description: 'Jobs trained at once.' }),
    frozenRuntime: Type.Optional(Type.String({ description: 'What computes frozen image bases\' features: `onnx` (ONNX Runtime) or `tfjs`.' })),
  },
  { title: 'WorkerCapabilities' },
);
export type WorkerCapabilities = Static<typeof WorkerCapabilities>;

export const WorkerJob = Type.Object({ fineTune: Type.String({ description: 'A fine-tune id.' }), startedAt: Timestamp }, { title: 'WorkerJob' });
export type WorkerJob = Static<typeof WorkerJob>;

export const Worker = Type.Object(
  {
    id: Type.String({ description: 'WORKER_ID (default `<hostname>-<pid>`).' }),
    object: Type.Literal('worker'),
    hostname: Type.String(),
    status: Literals(['idle', 'busy', 'draining'], { description: '`busy`: every slot runs a job; `draining`: shutting down, takes no new job.' }),
    capabilities: WorkerCapabilities,
    running: Type.Array(WorkerJob, { description: 'What it trains now.' }),
    startedAt: Timestamp,
    lastSeenAt: { ...Timestamp, description: 'Its last heartbeat (every 5 s; gone from the list 15 s after the last).' },
  },
  { title: 'Worker' },
);
export type Worker = Static<typeof Worker>;

export const WorkerList = Page(Worker, 'WorkerList');

export type Verdict = { ok: true } | { ok: false; reason: string; noWorkerCan: boolean };

/**
 * Whether `self` should start a job needing `need` now, knowing the other live workers and how long
 * the job has waited. A refusal hands the job back; `noWorkerCan` says that no live worker could run it.
 */
export function canRun(need: Resources, self: WorkerCapabilities, live: WorkerCapabilities[], waitedMs: number): Verdict {
  const fits = (w: WorkerCapabilities) => need.memoryMB === null || w.memoryPerJobBytes >= need.memoryMB * 2 ** 20;
  const suits = (w: WorkerCapabilities) =>
    fits(w) && (need.gpu === 'required' ? w.accelerator === 'gpu' : need.gpu === 'never' ? w.accelerator === 'cpu' : true);
  const noWorkerCan = !live.some(suits);
  if (!fits(self)) {
    return { ok: false, reason: `needs ${need.memoryMB} MiB per job; this worker offers ${Math.floor(self.memoryPerJobBytes / 2 ** 20)} MiB`, noWorkerCan };
  }
  if (need.gpu === 'required' && self.accelerator !== 'gpu') return { ok: false, reason: 'needs a GPU worker', noWorkerCan };
  if (need.gpu === 'never' && self.accelerator !== 'cpu') return { ok: false, reason: 'asks for a CPU worker', noWorkerCan };
  if (need.gpu === 'preferred' && self.accelerator !== 'gpu' && waitedMs < GPU_PREFERENCE_WAIT_MS && live.some((w) => w.accelerator === 'gpu' && fits(w))) {
    return { ok: false, reason: `prefers a GPU worker (one is live; CPU workers take it after ${GPU_PREFERENCE_WAIT_MS / 1000} s)`, noWorkerCan: false };
  }
  return { ok: true };
}
