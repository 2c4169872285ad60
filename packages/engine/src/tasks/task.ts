/**
 * The task seam: everything that differs between image and text classification sits behind
 * `Task` (one object per task kind) and the `TaskEncoder` it opens for a job. The pipeline's stages
 * (split, class weights, head, phases, early stopping, checkpoints, evaluation, baseline, export,
 * warnings) only ever see what is declared here: examples with ids and labels, rows of features,
 * batches of model inputs (`ModelInput`: tensors batched on axis 0), a tfjs layers model to unfreeze
 * (or none), and files for the exported bundle. They never see pixels or tokens.
 *
 * What a task owns:
 * - reading and checking a dataset file into labelled examples (`readDataset`);
 * - opening a base as a frozen encoder, cut where the spec says (`openEncoder`), and with it:
 *   - the frozen feature step (`inputs.pass` computes features for many examples at once, `run`
 *     for one batch of model inputs when the encoder runs in tfjs);
 *   - what is trainable: a tfjs LayersModel (`cut`) or nothing (`frozenOnly` says why);
 *   - turning examples into model inputs: from the dataset file exactly (`inputs.readExact`), or
 *     from its input cache (`inputs.cache`: decoded pixels, token ids), augmented when it can be;
 *   - what identifies those inputs in cache keys (`inputIdentity`);
 *   - the files the exported bundle needs to predict from raw input (`bundleFiles`);
 * - loading such a bundle back as a predictor from raw inputs (`bundle`).
 *
 * A text task plugs in as a second implementation: examples are rows (id = line number), inputs
 * [token ids, attention mask] int32 [n, maxLength], `inputs.pass` runs the encoder (onnxruntime or
 * tfjs) to pooled sentence vectors, `cut` is graft's tfjs encoder (or null for ONNX / graph encoders),
 * `augments` is false, the bundle holds the tokenizer files, pooling rule and maximum length.
 */
import type { Augmentation, Task as TaskName } from '@graft/contracts';
import type * as tf from '@tensorflow/tfjs';
import type { ResolvedBase } from '../bases/base-source.ts';
import type { Example } from '../data/example.ts';
import type { Pooling } from '../train/head.ts';
import type { ModelInput } from '../train/model-input.ts';
import type { ZipInput } from '../util/zip.ts';

export type { TaskName };

/** A dataset as a task reads it for training. */
export interface TaskDataset {
  /** Class names in output order (sorted by name; the model's outputs). */
  classes: string[];
  /** Examples per class as the upload counted them (the imbalance warning's figures). */
  classCounts: number[];
  /** Every usable example once (ids unique), `label` indexing `classes`, in the dataset file's order. */
  examples: Example[];
  /** Examples as the upload counted them (repeated ids included), for training.json. */
  total: number;
  /** Entries or rows left out at upload (listed there with their reasons). */
  skipped: number;
}

/** How a task names its examples in events, errors and records. */
export interface TaskUnits {
  /** `image` / `text` */
  one: string;
  /** `images` / `texts` */
  many: string;
  /** Key of the example count in training.json's `dataset` and `testDataset` (`images`, `rows`). */
  countField: string;
  /** What the feature cache's key says about inputs, in the `features` event (`preprocessing`, `tokenizer`). */
  inputIdentity: string;
}

export interface OpenEncoderOptions {
  /** Where the encoder is cut: a layer (tfjs layers), a node (tfjs graph), an output (ONNX). */
  cutLayer: string;
  /** Shared cache root for hosted models and unpacked zips; undefined → the loader's default. */
  cacheDir?: string;
  signal?: AbortSignal;
  /** An encoder that is a file of its own (ONNX) is put in the bundle up to this size, else only named (sha256, source). */
  maxBundledEncoderBytes?: number;
}

/** A previous graft fine-tune used as the base: its classes and head, so a new head can continue it. */
export interface PreviousFineTune {
  labels: string[];
  /** Names of its head's layers (`graft_head_*`) in `model`. */
  headLayerNames: string[];
  /** The whole previous model, head included. */
  model: tf.LayersModel;
}

/** A batch of examples as model inputs, with their class indices; the consumer disposes `x`. */
export interface LabelledBatch {
  labels: number[];
  x: ModelInput;
}

/** Raw inputs of a dataset's examples, stored once (decoded pixels, token ids) and read a batch at a time. */
export interface InputCache<B = unknown> {
  /** The stored inputs of these rows (positioned reads; the phase runner calls this a batch ahead). */
  read(rows: readonly number[]): Promise<B>;
  /**
   * A batch read → model inputs (inference values, not yet augmented). With the training PRNG,
   * a task that augments draws this batch's augmentation from it (same seed → same batch); null
   * for validation, which is never augmented.
   */
  inputs(batch: B, random: (() => number) | null): ModelInput;
  close(): Promise<void>;
}

/** Writes an input cache in one pass, then moves it into place whole (concurrent jobs see all or nothing). */
export interface InputCacheWriter {
  finish(): Promise<void>;
  abort(): Promise<void>;
}

/** The task's input cache format. */
export interface InputCacheStore<B = unknown> {
  /** `type` of the events that announce it (`images`). */
  readonly eventType: string;
  /**
   * Its files under `root`: with `datasetSha256`, in the shared cache directory, named by the
   * dataset and the input identity (reused by later jobs); without, a fixed name in the job's work directory.
   */
  files(root: string, datasetSha256: string | null): { data: string; index: string };
  /** A complete cache of exactly these ids, or null. `augmentation`: what `inputs(batch, random)` applies. */
  open(files: { data: string; index: string }, ids: readonly string[], augmentation: Augmentation | null): Promise<InputCache<B> | null>;
  /** A writer `TaskInputs.pass` fills. */
  create(files: { data: string; index: string }, ids: readonly string[]): Promise<InputCacheWriter>;
  /** The announcement of a reused cache. */
  reused(count: number): string;
  /** The announcement of a cache just written, and its size on disk. */
  stored(count: number): { message: string; bytes: number };
}

export interface InputPassOptions {
  /** Example ids in row order: row r of the features and of the input cache is ids[r]. */
  ids: readonly string[];
  /** Rows whose frozen features to compute (inference mode, exact preprocessing): every row, some, or none. */
  features: 'all' | ReadonlySet<number> | null;
  /** Also store every example's raw input (a writer from `cache.create`). */
  cache: InputCacheWriter | null;
  signal?: AbortSignal;
  onProgress?(done: number, total: number): void | Promise<void>;
  /** When given, the pass adds the milliseconds it spent in the frozen encoder (the rest of it is reading and decoding inputs). */
  timing?: { encoderMs: number };
}

/** How a job's examples become model inputs and features. */
export interface TaskInputs<B = unknown> {
  /**
   * One pass over a dataset file reading each example once: pooled features ([rows, dim] row-major,
   * rows not asked for left 0) and/or the input cache. null when no features were asked for.
   * TrainingError (`unreadable_image`, …) names an example that cannot be read; TrainingCancelled on abort.
   */
  pass(datasetPath: string, opts: InputPassOptions): Promise<Float32Array | null>;
  /** Examples of a dataset file with the exact preprocessing, in the file's order, `inferenceBatchSize` at a time. */
  readExact(datasetPath: string, examples: readonly Example[], signal?: AbortSignal): AsyncIterable<LabelledBatch>;
  cache: InputCacheStore<B>;
  /** The announcements of a pass (`features`: which rows get features; `storing`: the input cache is written). */
  describePass(p: { count: number; features: 'all' | 'validation' | null; storing: boolean }): { start: string; progress(done: number, total: number): string };
}

/** How an encoder's frozen features are computed, for the job's `backend` event. */
export interface FeatureRuntime {
  runtime: 'onnx' | 'tfjs';
  /** GRAFT_FROZEN_RUNTIME as set (`auto`, `onnx`, `tfjs`). */
  requested: string;
  /** Why tfjs: the setting, the backend, or (with `fallback`) why the ONNX path could not be used. */
  reason: string | null;
  /** ONNX Runtime was wanted but the conversion failed its check or met an unsupported layer. */
  fallback: boolean;
  /** The ONNX path's figures: the converted model's cache key, the check against tfjs, threads. */
  onnx: { version: string; threads: number; key: string; cached: boolean; relError: number; checkedOn: string; convertMs: number; checkMs: number; flopsPerImage: number | null; batchSize: number } | null;
}

/** A base opened for a job as the task's frozen encoder. */
export interface TaskEncoder {
  /**
   * The encoder as a tfjs LayersModel from its input(s) to the cut, every layer frozen: phase 2
   * unfreezes its top layers, the scratch baseline re-initialises a copy, the exported model is
   * `cut` + head. null when the encoder can only be frozen (a graph model, an ONNX encoder).
   */
  readonly cut: tf.LayersModel | null;
  /** With `cut` null: the error refusing phase 2 and the scratch baseline (`graph_model_frozen`, …). */
  readonly frozenOnly: { code: string; message: string } | null;
  /** Per-example output at the cut, before the head's pooling: [7, 7, 1280], [800], [hidden]. */
  readonly featureShape: number[];
  readonly pooling: Pooling;
  /** Length of a pooled feature row (what the feature cache stores and the head takes). */
  readonly dim: number;
  /**
   * The frozen encoder on a batch of model inputs → [n, ...featureShape], inference mode, inside
   * the caller's tf.tidy. null when the encoder does not run in tfjs (ONNX): features then come
   * from `inputs.pass` only, so such an encoder allows no augmentation and its bundle has no full model.
   */
  readonly run: ((x: ModelInput) => tf.Tensor) | null;
  /** Examples per inference call: bounds activation memory, and the event loop runs between calls. */
  readonly inferenceBatchSize: number;
  /**
   * What computes the frozen features of `inputs.pass` for a tfjs layers encoder: ONNX Runtime (the
   * cut converted and checked against tfjs) or tfjs; undefined where the question does not arise.
   */
  readonly featureRuntime?: FeatureRuntime;
  /**
   * A frozen part of `cut` (its input up to a tensor below the cut, e.g. what phase 2 leaves frozen)
   * on ONNX Runtime, converted and checked like the features (max relative error < 1e-4): `rows` runs
   * it on n inputs (unpooled output rows), or is null with `report.reason` saying why not. Undefined
   * where the encoder has no such path (text, graph models).
   */
  readonly frozenPartRuntime?: (part: tf.LayersModel) => Promise<{ report: FeatureRuntime; rows: { batchSize: number; run(x: Float32Array, n: number): Promise<Float32Array> } | null; release(): Promise<void> }>;
  /** What turns an example into model input, for cache keys: `{ preprocessing }`, `{ tokenizer, maxLength }`. */
  readonly inputIdentity: Record<string, unknown>;
  /** Set when the base is a previous graft fine-tune. */
  readonly previous: PreviousFineTune | null;
  readonly inputs: TaskInputs;
  /**
   * Files the bundle needs, beside the head or full model (model.json + weights.bin), labels.json
   * and training.json, to predict from raw input: image preprocessing.json (+ a graph base and
   * pipeline.json); text tokenizer files, pooling rule, maximum length (+ the ONNX encoder or its
   * sha256 and source). Called for the final model and every checkpoint (`use`: a checkpoint of a
   * large frozen encoder may only name it).
   */
  bundleFiles(use?: 'model' | 'checkpoint'): Promise<ZipInput[]>;
  /** Frees the encoder's weights (the whole base, above the cut too). */
  dispose(): void;
}

/** A raw input to predict from: image bytes (JPEG, PNG) or a text. */
export type RawInput = Uint8Array | string;

/** What a task loads from a model bundle: class probabilities from raw inputs. */
export interface TaskPredictor {
  /** [inputs.length, classes] probabilities, row-major, in input order. Throws a TypeError for an input of the wrong kind. */
  probabilities(inputs: readonly RawInput[]): Promise<Float32Array>;
  /** What computes the probabilities (absent: tfjs), and why not ONNX Runtime when it was asked for. */
  runtime?: { name: 'onnx' | 'tfjs'; reason: string | null; relError?: number };
  dispose(): void;
}

/** Reading a task's bundles back (the model zip a job exports, or a checkpoint). */
export interface BundleReader {
  /** Whether a bundle with these entry names is this task's. */
  recognises(names: ReadonlySet<string>): boolean;
  /**
   * `files`: every entry of the zip by name; `opts.encoderPath`: the encoder file a bundle only names;
   * `opts.runtime` `onnx`: run a layers model on ONNX Runtime when it converts and checks out against
   * tfjs (max relative error < 1e-4), else tfjs (`TaskPredictor.runtime` says which, and why).
   */
  load(files: ReadonlyMap<string, Uint8Array>, source: string, opts?: { encoderPath?: string; runtime?: 'onnx' | 'tfjs' }): Promise<TaskPredictor>;
}

export interface Task {
  readonly name: TaskName;
  readonly units: TaskUnits;
  /** Whether `spec.augmentation` applies (images: yes; text: no, refused by the plan). */
  readonly augments: boolean;
  /**
   * Reads and checks a dataset file (the stored upload). TrainingError with the dataset's codes
   * (`invalid_archive`, `no_images`, …) when it cannot be used.
   */
  readDataset(path: string): Promise<TaskDataset>;
  /** Opens a base as this task's frozen encoder. TrainingError `base_model_unavailable`, `invalid_cut_layer`; TrainingCancelled. */
  openEncoder(base: ResolvedBase, opts: OpenEncoderOptions): Promise<TaskEncoder>;
  readonly bundle: BundleReader;
}
