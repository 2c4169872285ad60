/** Classification metrics on the validation split, computed in plain JS from labels and predictions. */

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
