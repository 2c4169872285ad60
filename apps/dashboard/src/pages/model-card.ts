/**
 * The model card's summary, from what the API answers (the full card — card.json and MODEL_CARD.md —
 * is inside the downloaded model): the base and what it learnt, the data, the scores with a 95 %
 * Wilson interval, the job's warnings, and how to use it.
 */
import type { BaseModel, FineTune, FineTuneEvent } from '@graft/client';
import { graft } from '../api.ts';
import { h, pct } from '../dom.ts';

/** 95 % Wilson score interval of a proportion (same formula as the bundle's card). */
export function wilson(p: number, n: number, z = 1.96): [number, number] {
  if (!n) return [0, 1];
  const d = 1 + (z * z) / n;
  const c = (p + (z * z) / (2 * n)) / d;
  const r = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / d;
  return [Math.max(0, c - r), Math.min(1, c + r)];
}

export function modelCard(job: FineTune, events: readonly FineTuneEvent[]): HTMLElement {
  const r = job.result!;
  const base = h('dd', null, job.baseModel);
  const section = h('section', { class: 'model-card', 'aria-label': 'Model card' },
    h('h2', null, 'Model card'),
    h('dl', { class: 'facts wide' },
      h('div', null, h('dt', null, 'Base'), base),
      h('div', null, h('dt', null, 'Classes'), h('dd', null, r.classes.join(', '))),
      h('div', null, h('dt', null, 'Data'), h('dd', null, `${r.trainImages} training and ${r.validationImages} validation examples from ${job.dataset} (validation split ${job.validationSplit}, seed ${job.seed})`)),
      r.valAccuracy !== null && h('div', null, h('dt', null, 'Validation accuracy'), h('dd', null, `${pct(r.valAccuracy)} (95 % interval ${wilson(r.valAccuracy, r.validationImages).map((x) => pct(x)).join(' – ')})`)),
      r.test && r.test.accuracy !== null && h('div', null, h('dt', null, 'Test accuracy'), h('dd', null, `${pct(r.test.accuracy)} (95 % interval ${wilson(r.test.accuracy, r.test.images).map((x) => pct(x)).join(' – ')})`)),
      h('div', null, h('dt', null, 'Warnings'), h('dd', null, events.filter((e) => e.level === 'warning').map((e) => e.message).join(' ') || 'none')),
      h('div', null, h('dt', null, 'Intended use'), h('dd', null, `Classifying inputs like the training data into these ${r.classes.length} classes. Inputs unlike them (another domain, another class) still get one of these labels: check the probabilities.`))),
    h('p', { class: 'muted' }, 'The full card (card.json and MODEL_CARD.md) is inside the downloaded model.'));
  void graft.baseModels.retrieve(job.baseModel).then((b: BaseModel) => {
    base.textContent = `${b.name ?? b.id} — ${b.license ?? 'license unknown'}; pretrained on ${b.pretrainedOn ?? 'unknown data'}`;
  }, () => undefined);
  return section;
}
