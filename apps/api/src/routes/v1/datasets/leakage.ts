/**
 * Leakage as `POST /v1/fine-tunes` reports it: texts of `testDataset` that the training dataset
 * also holds. Not an error (the user may want exactly that), a warning: in the answer and as the
 * job's `leakage` event. Counted from the two fingerprint files only, so the request stays cheap;
 * the training process can name the test lines (`checkLeakage` with the rows file).
 */
import type { RequestWarning } from '@graft/contracts';
import type { DatasetRow } from '@graft/db';
import { checkLeakage } from '@graft/engine/text-dataset';
import { StorageNotFound, type Pulled } from '@graft/storage';
import type { FastifyInstance } from 'fastify';

export async function testSetLeakage(app: FastifyInstance, train: DatasetRow, test: DatasetRow): Promise<RequestWarning | null> {
  if (!train.fingerprintsKey || !test.fingerprintsKey) return null;
  const held: Pulled[] = [];
  let report;
  try {
    // Local copies (the files themselves with the local driver; pulled into the cache with S3).
    for (const key of [train.fingerprintsKey, test.fingerprintsKey]) held.push(await app.storage.pull(key));
    report = await checkLeakage({ trainFingerprintsPath: held[0]!.path, testFingerprintsPath: held[1]!.path });
  } catch (err) {
    // A derived file gone from storage must not stop the job: the check is skipped, and said so in the log.
    if (!(err instanceof StorageNotFound)) throw err;
    app.log.warn({ dataset: train.id, testDataset: test.id, key: err.key }, 'fingerprints missing: leakage not checked');
    return null;
  } finally {
    for (const h of held) h.release();
  }
  if (report.sharedTexts === 0) return null;
  const pct = (report.testShare * 100).toFixed(1);
  return {
    type: 'leakage',
    message:
      `Test dataset ${test.id} shares ${report.sharedTexts} of its ${report.testTexts} distinct texts (${pct}%) with training dataset ${train.id}: ` +
      'the test score on them measures memory, not generalisation. Remove them from one of the two sets for an honest score.',
    data: {
      dataset: train.id,
      testDataset: test.id,
      sharedTexts: report.sharedTexts,
      testTexts: report.testTexts,
      trainTexts: report.trainTexts,
      testShare: report.testShare,
    },
  };
}
