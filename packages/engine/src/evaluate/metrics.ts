/** Classification metrics on the validation split, computed in plain JS from labels and predictions. */
import type { Tensor2D } from '@tensorflow/tfjs';

export interface ClassMetrics {
  name: string;
  support: number;
  precision: number;
  recall: number;
  f1: number;
}

/** Rows: true class, columns: predicted class. */
export function confusionMatrix(truth: ArrayLike<number>, predicted: ArrayLike<number>, numClasses: number): number[][] {
  const m = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  for (let i = 0; i < truth.length; i++) m[truth[i]!]![predicted[i]!]! += 1;
  return m;
}

/** Per-class precision, recall and F1; a class never predicted (or never present) scores 0, as scikit-learn does. */
export function perClassMetrics(matrix: number[][], classes: readonly string[]): ClassMetrics[] {
  return classes.map((name, c) => {
    const tp = matrix[c]![c]!;
    const support = matrix[c]!.reduce((a, b) => a + b, 0);
    const predicted = matrix.reduce((a, row) => a + row[c]!, 0);
    const precision = predicted ? tp / predicted : 0;
    const recall = support ? tp / support : 0;
    const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
    return { name, support, precision, recall, f1 };
  });
}

export function accuracyOf(matrix: number[][]): number | null {
  let correct = 0, total = 0;
  matrix.forEach((row, i) => row.forEach((n, j) => { total += n; if (i === j) correct += n; }));
  return total ? correct / total : null;
}

/** Top-k accuracy's k: the requested one, at most the number of classes (and at least 1). */
export function clampTopK(k: number, numClasses: number): number {
  return Math.max(1, Math.min(Math.floor(k), numClasses));
}

/**
 * Accumulates a model's scores over batches of (probabilities, true labels): predictions, top-k
 * hits and the summed cross-entropy (Keras' clipping), then builds the contracts' `Evaluation`.
 */
export class Scorer {
  readonly predicted: number[] = [];
  readonly truth: number[] = [];
  private topKHits = 0;
  private lossSum = 0;

  constructor(readonly numClasses: number, readonly k: number) {}

  /** `probs` [n, classes] (not disposed here), `labels` the n true class indices. */
  async add(probs: Tensor2D, labels: readonly number[]): Promise<void> {
    const values = await probs.data<'float32'>();
    const c = this.numClasses;
    labels.forEach((label, i) => {
      const row = values.subarray(i * c, (i + 1) * c);
      let best = 0;
      for (let j = 1; j < c; j++) if (row[j]! > row[best]!) best = j;
      // Rank of the true class: how many classes score strictly higher (ties count in its favour).
      let higher = 0;
      for (let j = 0; j < c; j++) if (row[j]! > row[label]!) higher++;
      if (higher < this.k) this.topKHits++;
      this.lossSum += -Math.log(Math.min(1 - 1e-7, Math.max(1e-7, row[label]!)));
      this.predicted.push(best);
      this.truth.push(label);
    });
  }

  get count(): number {
    return this.truth.length;
  }

  get loss(): number | null {
    return this.count ? this.lossSum / this.count : null;
  }

  get accuracy(): number | null {
    if (!this.count) return null;
    return this.predicted.reduce((a, p, i) => a + (p === this.truth[i] ? 1 : 0), 0) / this.count;
  }

  evaluation(classes: readonly string[]): EvaluationResult {
    const matrix = confusionMatrix(this.truth, this.predicted, this.numClasses);
    return {
      images: this.count,
      accuracy: accuracyOf(matrix),
      loss: this.loss,
      topK: { k: this.k, accuracy: this.count ? this.topKHits / this.count : null },
      perClass: perClassMetrics(matrix, classes),
      confusionMatrix: matrix,
    };
  }
}

/** The contracts' `Evaluation`. */
export interface EvaluationResult {
  images: number;
  accuracy: number | null;
  loss: number | null;
  topK: { k: number; accuracy: number | null };
  perClass: ClassMetrics[];
  confusionMatrix: number[][];
}
