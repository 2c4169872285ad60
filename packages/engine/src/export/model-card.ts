/**
 * The model card of a fine-tuned model (after Mitchell et al., "Model Cards for Model Reporting"):
 * `card.json` for programs and `MODEL_CARD.md` for people, both in the final bundle. It says what
 * the base is and was pretrained on (and its license), which data trained it (checksum and
 * statistics), how (hyperparameters), how well (metrics with the confusion matrix, and the 95 %
 * interval the validation set's size allows), the warnings the job raised, what the model is for,
 * and how the three limits of transfer learning apply to it: task mismatch, dataset bias and
 * overfitting on small data. Built from what the job measured; nothing is estimated for show.
 */
import type { BaseModel, Evaluation, FineTuneResult, FineTuneSpec } from '@graft/contracts';
import type { EpochResult } from '../train/phase-runner.ts';
import type { ZipInput } from '../util/zip.ts';

export const MODEL_CARD_FILES = { json: 'card.json', markdown: 'MODEL_CARD.md' } as const;

/** Above this ratio of largest to smallest class, predictions lean towards the large classes (as the `imbalance` warning). */
const IMBALANCE_RATIO = 3;
/** A train-minus-validation accuracy gap above this at the kept epoch is called out as overfitting. */
const OVERFIT_GAP = 0.1;
/** Fewer validation examples per class than this make per-class figures anecdotal. */
const SMALL_CLASS = 30;

export interface ModelCardInput {
  spec: FineTuneSpec;
  base: BaseModel;
  /** `continuedFrom`: the fine-tune whose head this one continued, when any. */
  continuedFrom: string | null;
  /** training.json's `dataset` and `testDataset` (id, sha256, bytes, counts per class). */
  dataset: Record<string, unknown>;
  testDataset: Record<string, unknown> | null;
  /** `images` / `texts`, and the key of the example count in `dataset`. */
  units: { one: string; many: string; countField: string };
  history: readonly EpochResult[];
  result: FineTuneResult;
  /** The warnings the job raised, in order. */
  warnings: readonly { type: string; message: string }[];
  /** The bundle's other files (model.json, weights.bin, labels.json, the task's, training.json). */
  files: readonly string[];
}

export interface ClassShare {
  name: string;
  train: number;
  validation: number;
  share: number;
}

export interface Limitation {
  kind: 'task_mismatch' | 'dataset_bias' | 'overfitting';
  title: string;
  /** Whether this job's own figures show the risk (not only that it exists in general). */
  observed: boolean;
  detail: string;
}

export interface ModelCard {
  schemaVersion: 1;
  model: { task: string; classes: string[]; format: string; files: string[] };
  base: Pick<BaseModel, 'id' | 'name' | 'format' | 'source' | 'license' | 'pretrainedOn' | 'description' | 'inputShape' | 'featureLayer'> & {
    cutLayer: string;
    continuedFrom: string | null;
  };
  dataset: {
    id: string | null;
    sha256: string | null;
    bytes: number | null;
    examples: number | null;
    unit: string;
    classes: ClassShare[];
    imbalanceRatio: number | null;
    skipped: number;
    test: { id: string | null; sha256: string | null; examples: number | null } | null;
  };
  training: {
    seed: number;
    validationSplit: number;
    hyperparameters: FineTuneSpec['hyperparameters'];
    trainableLayers: FineTuneSpec['trainableLayers'];
    earlyStopping: FineTuneSpec['earlyStopping'];
    classWeights: FineTuneSpec['classWeights'];
    augmentation: FineTuneSpec['augmentation'];
    baseline: FineTuneSpec['baseline'];
    backend: string;
    epochsRun: number;
    bestEpoch: number | null;
    stoppedEarly: boolean;
    trainingMs: number;
  };
  metrics: {
    validation: Evaluation | null;
    /** Wilson 95 % interval of the validation accuracy: how much the figure can move on a set this size. */
    validationAccuracyInterval95: [number, number] | null;
    /** Training accuracy at the epoch whose weights the model has, next to its validation accuracy. */
    atBestEpoch: { epoch: number; accuracy: number; valAccuracy: number | null } | null;
    test: Evaluation | null;
    baseline: FineTuneResult['baseline'] | null;
  };
  warnings: { type: string; message: string }[];
  intendedUse: { primary: string; users: string; outOfScope: string[] };
  limitations: Limitation[];
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const pct = (v: number | null | undefined, digits = 1) => (v === null || v === undefined ? 'n/a' : `${(v * 100).toFixed(digits)} %`);

/** Wilson score interval (95 %) of a proportion `p` over `n` trials. */
export function wilson95(p: number, n: number): [number, number] {
  if (n <= 0) return [0, 1];
  const z = 1.959964;
  const denom = 1 + (z * z) / n;
  const centre = (p + (z * z) / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / denom;
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

export function buildModelCard(input: ModelCardInput): ModelCard {
  const { spec, base, result, units } = input;
  const counts = Array.isArray(input.dataset.classes) ? (input.dataset.classes as { name: string; train: number; validation: number }[]) : [];
  const total = counts.reduce((s, c) => s + c.train + c.validation, 0);
  const classes: ClassShare[] = counts.map((c) => ({ name: c.name, train: c.train, validation: c.validation, share: total ? (c.train + c.validation) / total : 0 }));
  const sizes = classes.map((c) => c.train + c.validation).filter((n) => n > 0);
  const imbalanceRatio = sizes.length ? Math.max(...sizes) / Math.min(...sizes) : null;
  const validation = result.validation ?? null;
  const valN = validation?.images ?? result.validationImages;
  const interval = result.valAccuracy !== null && valN > 0 ? wilson95(result.valAccuracy, valN) : null;
  const best = result.bestEpoch !== null ? input.history.find((h) => h.epoch === result.bestEpoch) : undefined;
  const atBestEpoch = best ? { epoch: best.epoch, accuracy: best.accuracy, valAccuracy: best.valAccuracy } : null;
  const skipped = Array.isArray(input.dataset.skipped) ? input.dataset.skipped.length : (num(input.dataset.skipped) ?? 0);
  const test = input.testDataset
    ? { id: str(input.testDataset.id), sha256: str(input.testDataset.sha256), examples: num(input.testDataset[units.countField]) }
    : null;

  return {
    schemaVersion: 1,
    model: {
      task: base.task,
      classes: result.classes,
      format: 'tfjs-layers',
      files: [...input.files, MODEL_CARD_FILES.markdown, MODEL_CARD_FILES.json],
    },
    base: {
      id: base.id,
      name: base.name,
      format: base.format,
      source: base.source,
      license: base.license,
      pretrainedOn: base.pretrainedOn,
      description: base.description,
      inputShape: base.inputShape,
      featureLayer: base.featureLayer,
      cutLayer: spec.cutLayer,
      continuedFrom: input.continuedFrom,
    },
    dataset: {
      id: str(input.dataset.id),
      sha256: str(input.dataset.sha256),
      bytes: num(input.dataset.bytes),
      examples: num(input.dataset[units.countField]),
      unit: units.many,
      classes,
      imbalanceRatio,
      skipped,
      test,
    },
    training: {
      seed: spec.seed,
      validationSplit: spec.validationSplit,
      hyperparameters: spec.hyperparameters,
      trainableLayers: spec.trainableLayers,
      earlyStopping: spec.earlyStopping,
      classWeights: spec.classWeights,
      augmentation: spec.augmentation,
      baseline: spec.baseline,
      backend: result.backend,
      epochsRun: result.epochsRun,
      bestEpoch: result.bestEpoch,
      stoppedEarly: result.stoppedEarly,
      trainingMs: result.trainingMs,
    },
    metrics: { validation, validationAccuracyInterval95: interval, atBestEpoch, test: result.test ?? null, baseline: result.baseline ?? null },
    warnings: input.warnings.map((w) => ({ type: w.type, message: w.message })),
    intendedUse: {
      primary: `Classifying ${units.many} like those of dataset ${str(input.dataset.id) ?? '(unnamed)'} into one of its ${result.classes.length} classes: ${result.classes.join(', ')}.`,
      users: 'Developers who have checked the metrics below on data like their own.',
      outOfScope: [
        `${cap(units.many)} of none of these classes: the model always answers one of them, often with high probability.`,
        `${cap(units.many)} unlike the training data (other sources, devices, languages or conditions) until measured on such data.`,
        'Decisions about people, or any use where an error is costly, without a human check and an evaluation on representative data.',
      ],
    },
    limitations: limitations(input, { classes, imbalanceRatio, interval, atBestEpoch, valN }),
  };
}

function limitations(
  input: ModelCardInput,
  m: { classes: ClassShare[]; imbalanceRatio: number | null; interval: [number, number] | null; atBestEpoch: ModelCard['metrics']['atBestEpoch']; valN: number },
): Limitation[] {
  const { base, result, units } = input;
  const warned = (type: string) => input.warnings.some((w) => w.type === type);

  const gain = result.baseline?.transferGain ?? null;
  const mismatch: Limitation = {
    kind: 'task_mismatch',
    title: 'Task mismatch',
    observed: warned('taskMismatch') || (gain !== null && gain <= 0.01),
    detail:
      `The base ${base.id} learnt: ${base.pretrainedOn}. Transfer helps when that is close to this task. ` +
      (result.baseline
        ? `Measured here: the same network trained from scratch reached ${pct(result.baseline.valAccuracy)} validation accuracy against ${pct(result.valAccuracy)} with transfer (gain ${gain === null ? 'n/a' : `${(gain * 100).toFixed(1)} points`}).`
        : 'Not measured for this model: train again with `baseline: "scratch"` to see what the pretrained weights add.'),
  };

  const smallest = m.classes.length ? m.classes.reduce((a, b) => (a.train + a.validation <= b.train + b.validation ? a : b)) : null;
  const largest = m.classes.length ? m.classes.reduce((a, b) => (a.train + a.validation >= b.train + b.validation ? a : b)) : null;
  const fewValidation = m.classes.filter((c) => c.validation < SMALL_CLASS).map((c) => c.name);
  const weakest = (result.perClass ?? []).filter((c) => c.support > 0).sort((a, b) => a.recall - b.recall)[0];
  const imbalanced = m.imbalanceRatio !== null && m.imbalanceRatio > IMBALANCE_RATIO;
  const bias: Limitation = {
    kind: 'dataset_bias',
    title: 'Dataset bias',
    observed: imbalanced || warned('imbalance') || warned('leakage'),
    detail:
      'The model knows only what the dataset shows: its classes, their proportions and the conditions its ' +
      `${units.many} were taken in. ` +
      (smallest && largest && m.imbalanceRatio !== null
        ? `Largest class ${largest.name} (${largest.train + largest.validation} ${units.many}), smallest ${smallest.name} (${smallest.train + smallest.validation}): ratio ${m.imbalanceRatio.toFixed(2)}` +
          (imbalanced ? `, imbalanced (above ${IMBALANCE_RATIO}): expect predictions to lean towards the large classes${input.spec.classWeights === 'none' ? '; class weights were not used' : ''}. ` : '. ')
        : '') +
      (weakest ? `Lowest validation recall: ${weakest.name} (${pct(weakest.recall)}). ` : '') +
      (fewValidation.length ? `Fewer than ${SMALL_CLASS} validation ${units.many} in ${fewValidation.length === m.classes.length ? 'every class' : fewValidation.join(', ')}: per-class figures are rough.` : ''),
  };

  const gap = m.atBestEpoch && m.atBestEpoch.valAccuracy !== null ? m.atBestEpoch.accuracy - m.atBestEpoch.valAccuracy : null;
  const overfitting: Limitation = {
    kind: 'overfitting',
    title: 'Overfitting on small data',
    observed: warned('overfitting') || (gap !== null && gap > OVERFIT_GAP),
    detail:
      `Trained on ${result.trainImages} ${units.many}, validated on ${m.valN}. ` +
      (m.interval ? `With ${m.valN} validation ${units.many}, the validation accuracy of ${pct(result.valAccuracy)} is known to within ${pct(m.interval[0])}–${pct(m.interval[1])} (95 % Wilson interval). ` : '') +
      (gap !== null && m.atBestEpoch
        ? `At the kept epoch (${m.atBestEpoch.epoch}) training accuracy was ${pct(m.atBestEpoch.accuracy)} against ${pct(m.atBestEpoch.valAccuracy)} on validation (gap ${(gap * 100).toFixed(1)} points). `
        : '') +
      (warned('overfitting') ? 'The job warned that validation loss rose while training loss fell. ' : '') +
      (result.test
        ? `On the separate test set: ${pct(result.test.accuracy)} over ${result.test.images} ${units.many}.`
        : 'No separate test set was scored' +
          (input.spec.earlyStopping !== false && input.spec.earlyStopping.restoreBestWeights
            ? ': the validation split also chose the kept epoch, so its figure is slightly optimistic.'
            : '.')),
  };
  return [mismatch, bias, overfitting];
}

const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
const cell = (v: unknown) => String(v).replaceAll('|', '\\|').replaceAll('\n', ' ');

/** MODEL_CARD.md: the card for people. */
export function renderModelCard(card: ModelCard): string {
  const { base, dataset, training, metrics } = card;
  const hp = training.hyperparameters;
  const lines: string[] = [];
  const push = (...l: string[]) => lines.push(...l);
  push(`# Model card: ${base.name} fine-tuned on ${dataset.id ?? 'a dataset'}`, '');
  push(`${cap(card.model.task.replace('-', ' '))} into ${card.model.classes.length} classes: ${card.model.classes.map((c) => `\`${c}\``).join(', ')}.`, '');
  push(`Files: ${card.model.files.map((f) => `\`${f}\``).join(', ')}. \`model.json\` + \`weights.bin\` are a TensorFlow.js layers model, \`labels.json\` the class names in output order, \`training.json\` everything the job did (with its split), \`card.json\` this card as data.`, '');

  push('## Base model', '');
  push('| | |', '|---|---|');
  push(`| id | \`${base.id}\` (${cell(base.format)}) |`, `| name | ${cell(base.name)} |`, `| pretrained on | ${cell(base.pretrainedOn)} |`);
  push(`| license | ${cell(base.license)} |`, `| source | ${cell(base.source)} |`, `| input | ${base.inputShape.join(' × ')} |`, `| cut at | \`${cell(base.cutLayer)}\` |`);
  if (base.continuedFrom) push(`| continued from | \`${base.continuedFrom}\` (its head kept training) |`);
  push('');

  push('## Data', '');
  push(`Dataset \`${dataset.id ?? '?'}\`: ${dataset.examples ?? '?'} ${dataset.unit}${dataset.bytes !== null ? `, ${dataset.bytes} bytes` : ''}, sha256 \`${dataset.sha256 ?? '?'}\`` + (dataset.skipped ? `; ${dataset.skipped} entries skipped at upload.` : '.'), '');
  push('| class | train | validation | share |', '|---|---:|---:|---:|');
  for (const c of dataset.classes) push(`| ${cell(c.name)} | ${c.train} | ${c.validation} | ${pct(c.share)} |`);
  push('');
  if (dataset.imbalanceRatio !== null) push(`Largest / smallest class: ${dataset.imbalanceRatio.toFixed(2)}.`, '');
  if (dataset.test) push(`Test set \`${dataset.test.id ?? '?'}\`: ${dataset.test.examples ?? '?'} ${dataset.unit}, sha256 \`${dataset.test.sha256 ?? '?'}\`.`, '');

  push('## Training', '');
  push(
    `Seed ${training.seed}, validation split ${training.validationSplit} (stratified), backend ${training.backend}. ` +
      `Head: ${hp.epochs} epochs at learning rate ${hp.learningRate}, batch ${hp.batchSize}, ${hp.headUnits} hidden units, dropout ${hp.dropout}, label smoothing ${hp.labelSmoothing}, L2 ${hp.l2}. ` +
      `Unfrozen layers: ${JSON.stringify(training.trainableLayers)}` +
      (training.trainableLayers !== 'none' ? ` (${hp.fineTuneEpochs} epochs at ${hp.fineTuneLearningRate})` : '') +
      `. Early stopping: ${training.earlyStopping === false ? 'off' : `patience ${training.earlyStopping.patience}, best weights ${training.earlyStopping.restoreBestWeights ? 'restored' : 'not restored'}`}. ` +
      `Class weights: ${typeof training.classWeights === 'string' ? training.classWeights : 'custom'}. Augmentation: ${training.augmentation ? JSON.stringify(training.augmentation) : 'none'}.`,
    '',
  );
  push(`${training.epochsRun} epochs run${training.stoppedEarly ? ' (stopped early)' : ''}; the model has the weights of epoch ${training.bestEpoch ?? '?'}. Trained in ${(training.trainingMs / 1000).toFixed(1)} s.`, '');

  push('## Metrics', '');
  const v = metrics.validation;
  if (v) {
    push(
      `Validation (${v.images} ${dataset.unit}): accuracy **${pct(v.accuracy)}**` +
        (metrics.validationAccuracyInterval95 ? ` (95 % interval ${pct(metrics.validationAccuracyInterval95[0])}–${pct(metrics.validationAccuracyInterval95[1])})` : '') +
        `, loss ${v.loss === null ? 'n/a' : v.loss.toFixed(4)}, top-${v.topK.k} accuracy ${pct(v.topK.accuracy)}.`,
      '',
    );
    push('| class | precision | recall | F1 | support |', '|---|---:|---:|---:|---:|');
    for (const c of v.perClass) push(`| ${cell(c.name)} | ${c.precision.toFixed(3)} | ${c.recall.toFixed(3)} | ${c.f1.toFixed(3)} | ${c.support} |`);
    push('', 'Confusion matrix (rows: true class, columns: predicted):', '');
    const names = card.model.classes;
    push(`| | ${names.map(cell).join(' | ')} |`, `|---|${names.map(() => '---:').join('|')}|`);
    v.confusionMatrix.forEach((row, i) => push(`| **${cell(names[i] ?? i)}** | ${row.join(' | ')} |`));
    push('');
  }
  if (metrics.test) push(`Test set (${metrics.test.images} ${dataset.unit}): accuracy **${pct(metrics.test.accuracy)}**, loss ${metrics.test.loss === null ? 'n/a' : metrics.test.loss.toFixed(4)}.`, '');
  if (metrics.baseline) push(`From scratch (same architecture, same data): validation accuracy ${pct(metrics.baseline.valAccuracy)}; transfer gain ${metrics.baseline.transferGain === null ? 'n/a' : `${(metrics.baseline.transferGain * 100).toFixed(1)} points`}.`, '');

  push('## Warnings raised by the job', '');
  if (card.warnings.length) for (const w of card.warnings) push(`- **${cell(w.type)}**: ${w.message}`);
  else push('None.');
  push('');

  push('## Intended use', '', card.intendedUse.primary, '', `Intended users: ${card.intendedUse.users}`, '', 'Out of scope:', '');
  for (const o of card.intendedUse.outOfScope) push(`- ${o}`);
  push('');

  push('## Limits of transfer learning that apply', '');
  for (const l of card.limitations) push(`- **${l.title}**${l.observed ? ' (observed in this job)' : ''}: ${l.detail}`);
  push('');
  return lines.join('\n');
}

/** The two card files for the bundle. */
export function modelCardFiles(card: ModelCard): ZipInput[] {
  return [
    { name: MODEL_CARD_FILES.markdown, data: Buffer.from(renderModelCard(card)) },
    { name: MODEL_CARD_FILES.json, data: Buffer.from(`${JSON.stringify(card, null, 2)}\n`) },
  ];
}
