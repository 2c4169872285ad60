/**
 * Leakage between a training and a test dataset: texts (after normalisation) present in both. A
 * test score on texts the model was trained on measures memory, not generalisation. Counted from
 * the two fingerprint files in one merge; the examples, when asked for, come from the test set's
 * rows file.
 */
import { fingerprint } from './normalize.ts';
import { intersectSorted, readFingerprints } from './fingerprints.ts';
import { readTextRows } from './rows-file.ts';

export interface LeakageReport {
  /** Distinct texts present in both datasets. */
  sharedTexts: number;
  /** Distinct texts of the training and of the test dataset. */
  trainTexts: number;
  testTexts: number;
  /** sharedTexts / testTexts: the share of the test set's distinct texts the model saw in training. */
  testShare: number;
  /** Test rows holding a shared text (only when `testRowsPath` was given). */
  testRows: number | null;
  /** The first such test rows: line in the test file and text (at most 200 characters). */
  examples: { line: number; text: string }[];
}

export async function checkLeakage(opts: {
  trainFingerprintsPath: string;
  testFingerprintsPath: string;
  /**
   * The test dataset's rows file: to count the test rows concerned and give examples (this reads
   * and hashes every test row: worth it in a training process, not on an API request).
   */
  testRowsPath?: string | null;
  maxExamples?: number;
}): Promise<LeakageReport> {
  const [train, test] = await Promise.all([readFingerprints(opts.trainFingerprintsPath), readFingerprints(opts.testFingerprintsPath)]);
  const shared = intersectSorted(train, test);
  const report: LeakageReport = {
    sharedTexts: shared.length,
    trainTexts: train.length,
    testTexts: test.length,
    testShare: test.length ? shared.length / test.length : 0,
    testRows: null,
    examples: [],
  };
  if (opts.testRowsPath && shared.length > 0) {
    const set = new Set(shared);
    const max = opts.maxExamples ?? 5;
    let rows = 0;
    for await (const row of readTextRows(opts.testRowsPath)) {
      if (!set.has(fingerprint(row.text))) continue;
      rows++;
      if (report.examples.length < max) report.examples.push({ line: row.line, text: [...row.text].slice(0, 200).join('') });
    }
    report.testRows = rows;
  }
  return report;
}
