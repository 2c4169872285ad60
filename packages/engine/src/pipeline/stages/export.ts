/**
 * Stage 11, export: the bundle (the exported model, labels, the task's files, training.json with
 * the result, the model card) written to `outDir/model/` and `outDir/model.zip`.
 */
import type { FineTuneResult } from '@graft/contracts';
import { exportModel } from '../../export/bundle.ts';
import { buildModelCard, modelCardFiles } from '../../export/model-card.ts';
import { WEIGHTS_FILE } from '../../bases/model-io.ts';
import type { EpochResult } from '../../train/phase-runner.ts';
import type { RunContext } from '../context.ts';
import type { FineTuneOutcome } from '../options.ts';
import type { TransferModel } from './build-model.ts';

export async function exportBundle(
  ctx: RunContext,
  model: TransferModel,
  summary: { result: FineTuneResult; bestEpoch: number; baselineHistory: EpochResult[] | null },
  checkpoints: FineTuneOutcome['checkpoints'],
): Promise<Omit<FineTuneOutcome, 'checkpointTimings'>> {
  const training = ctx.record.toJSON({ bestEpoch: summary.bestEpoch, baselineHistory: summary.baselineHistory, result: summary.result });
  const files = await model.files(training);
  const card = buildModelCard({
    spec: ctx.spec,
    base: ctx.base.descriptor,
    continuedFrom: ctx.record.continuedFrom,
    dataset: ctx.record.dataset,
    testDataset: ctx.record.testDataset,
    units: ctx.task.units,
    history: ctx.record.history,
    result: summary.result,
    warnings: ctx.warnings,
    files: ['model.json', WEIGHTS_FILE, 'labels.json', ...files.taskFiles.map((f) => f.name), 'training.json'],
  });
  const exported = await exportModel({ ...files, extra: modelCardFiles(card), outDir: ctx.outDir });
  await ctx.emit({ level: 'info', type: 'export', message: `Exported the model (${exported.bytes} bytes).`, data: { bytes: exported.bytes } });
  return { result: summary.result, modelZipPath: exported.zipPath, modelZipBytes: exported.bytes, checkpoints };
}
