/**
 * Trains the head on cached features with an explicit batch loop, so that every batch reports
 * progress, honours cancellation and yields to the event loop (a worker's IPC and lock renewals
 * must get through while training runs on the main thread).
 */
import * as tf from '@tensorflow/tfjs';
import { TrainingCancelled, TrainingError } from './errors.ts';
import { crossEntropy, headForwardTraining, type Head } from './head.ts';
import { mulberry32, nextSeed, shuffleInPlace } from './random.ts';

export interface EpochResult {
  epoch: number;
  phase: 'head';
  loss: number;
  accuracy: number;
  valLoss: number | null;
  valAccuracy: number | null;
  durationMs: number;
}

export interface TrainData {
  /** [n, dim] features and int32 labels. */
  trainX: tf.Tensor2D;
  trainY: tf.Tensor1D;
  valX: tf.Tensor2D | null;
  valY: tf.Tensor1D | null;
  numClasses: number;
}

export interface TrainOptions {
  epochs: number;
  batchSize: number;
  learningRate: number;
  seed: number;
  signal?: AbortSignal;
  onBatch?(p: { epoch: number; epochs: number; batch: number; batches: number }): void | Promise<void>;
  onEpoch?(m: EpochResult): void | Promise<void>;
}

export async function trainHead(head: Head, data: TrainData, opts: TrainOptions): Promise<EpochResult[]> {
  const n = data.trainX.shape[0];
  const batches = Math.ceil(n / opts.batchSize);
  const random = mulberry32(opts.seed ^ 0x5bd1e995); // its own stream, apart from the split's
  const order = Array.from({ length: n }, (_, i) => i);
  const optimizer = tf.train.adam(opts.learningRate);
  const history: EpochResult[] = [];
  try {
    for (let epoch = 1; epoch <= opts.epochs; epoch++) {
      const started = performance.now();
      shuffleInPlace(order, random);
      let lossSum = 0;
      let correct = 0;
      for (let b = 0; b < batches; b++) {
        if (opts.signal?.aborted) throw new TrainingCancelled();
        const idx = order.slice(b * opts.batchSize, (b + 1) * opts.batchSize);
        const dropoutSeed = nextSeed(random);
        const kept: { correct?: tf.Scalar } = {};
        const cost = tf.tidy(() => {
          const rows = tf.tensor1d(idx, 'int32');
          const x = tf.gather(data.trainX, rows);
          const labels = tf.gather(data.trainY, rows);
          const y = tf.oneHot(labels, data.numClasses).cast('float32') as tf.Tensor2D;
          return optimizer.minimize(() => {
            const probs = headForwardTraining(head, x, dropoutSeed);
            // Training accuracy as Keras reports it: on this batch's (dropout) predictions.
            kept.correct = tf.keep(probs.argMax(1).equal(labels).cast('float32').sum() as tf.Scalar);
            return crossEntropy(y, probs);
          }, true, head.variables)!;
        });
        const [loss] = await cost.data();
        const [hits] = await kept.correct!.data();
        tf.dispose([cost, kept.correct!]);
        if (!Number.isFinite(loss)) {
          throw new TrainingError(
            'training_diverged',
            `The training loss became ${loss} at epoch ${epoch}, batch ${b + 1}; try a lower learning rate (now ${opts.learningRate}).`,
          );
        }
        lossSum += loss! * idx.length;
        correct += hits!;
        await opts.onBatch?.({ epoch, epochs: opts.epochs, batch: b + 1, batches });
        await new Promise((r) => setImmediate(r));
      }
      const val = data.valX && data.valY ? await evaluateHead(head, data.valX, data.valY, data.numClasses, opts.batchSize) : null;
      const result: EpochResult = {
        epoch,
        phase: 'head',
        loss: lossSum / n,
        accuracy: correct / n,
        valLoss: val?.loss ?? null,
        valAccuracy: val?.accuracy ?? null,
        durationMs: Math.round(performance.now() - started),
      };
      history.push(result);
      await opts.onEpoch?.(result);
    }
  } finally {
    optimizer.dispose();
  }
  return history;
}

/** Inference-mode predictions (dropout off) of the head: class index per row and the mean loss. */
export async function evaluateHead(
  head: Head,
  x: tf.Tensor2D,
  labels: tf.Tensor1D,
  numClasses: number,
  batchSize = 256,
): Promise<{ loss: number; accuracy: number; predicted: Int32Array }> {
  const n = x.shape[0];
  const predicted = new Int32Array(n);
  let lossSum = 0;
  for (let start = 0; start < n; start += batchSize) {
    const size = Math.min(batchSize, n - start);
    const [loss, pred] = tf.tidy((): [tf.Scalar, tf.Tensor1D] => {
      const xb = x.slice([start, 0], [size, -1]);
      const yb = labels.slice([start], [size]);
      const probs = head.model.predict(xb) as tf.Tensor2D;
      return [crossEntropy(tf.oneHot(yb, numClasses).cast('float32') as tf.Tensor2D, probs), probs.argMax(1) as tf.Tensor1D];
    });
    lossSum += (await loss.data())[0]! * size;
    predicted.set(await pred.data<'int32'>(), start);
    tf.dispose([loss, pred]);
  }
  const truth = await labels.data<'int32'>();
  const hits = predicted.reduce((a, p, i) => a + (p === truth[i] ? 1 : 0), 0);
  return { loss: lossSum / n, accuracy: hits / n, predicted };
}

/**
 * Overfitting, as graft warns of it: validation loss rose for 3 consecutive epochs while the
 * training loss fell over the same span. (An accuracy-gap rule fires on small, noisy validation
 * sets too readily; a sustained rise in validation loss is the signal Keras' EarlyStopping uses.)
 */
export function isOverfitting(history: readonly EpochResult[]): boolean {
  if (history.length < 4) return false;
  const last = history.slice(-4);
  const v = last.map((e) => e.valLoss);
  if (v.some((x) => x === null)) return false;
  const rising = v[1]! > v[0]! && v[2]! > v[1]! && v[3]! > v[2]!;
  return rising && last[3]!.loss < last[0]!.loss;
}
