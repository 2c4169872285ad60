/** Compare: two or more jobs' validation curves on the same axes, and their final figures side by side. */
import type { EpochMetrics, FineTune } from '@graft/client';
import { graft } from '../api.ts';
import { LineChart, PALETTE } from '../charts.ts';
import { fill, h, link, navigate, num, pct } from '../dom.ts';
import { statusBadge } from '../job-bits.ts';
import type { PageContext } from '../main.ts';

export async function comparePage({ root, query, signal }: PageContext): Promise<void> {
  const chosen = (query.get('ids') ?? '').split(',').filter((s) => /^ft_[\w-]+$/.test(s));
  const recent = await graft.fineTunes.list({ limit: 50 }, { signal });
  const boxes = recent.data.map((j) => h('input', { type: 'checkbox', value: j.id, checked: chosen.includes(j.id), id: `c-${j.id}` }));
  const picker = h('form', { class: 'form', 'aria-label': 'Jobs to compare' },
    h('fieldset', null, h('legend', null, 'Jobs (newest first)'),
      h('div', { class: 'pick-list' }, recent.data.map((j, i) => h('div', null, boxes[i], ' ', h('label', { for: `c-${j.id}` }, j.id, ' ', statusBadge(j.status), ` ${j.baseModel} on ${j.dataset}`))))),
    h('div', null, h('button', { type: 'submit' }, 'Compare')));
  picker.addEventListener('submit', (e) => {
    e.preventDefault();
    navigate(`/compare?ids=${boxes.filter((b) => b.checked).map((b) => b.value).join(',')}`);
  });
  const out = h('div');
  fill(root, h('h1', null, 'Compare fine-tunes'), out, h('details', { open: chosen.length < 2 }, h('summary', null, 'Choose jobs'), picker));
  if (chosen.length < 2) {
    fill(out, h('p', { class: 'muted' }, 'Choose two or more jobs below.'));
    return;
  }
  const runs = await Promise.all(chosen.map(async (id) => {
    const [job, metrics] = await Promise.all([graft.fineTunes.retrieve(id, { signal }), graft.fineTunes.metrics(id, { signal })]);
    return { job, metrics: metrics.data.filter((m: EpochMetrics) => m.phase !== 'baseline') };
  }));
  const acc = new LineChart('Validation accuracy');
  const loss = new LineChart('Validation loss');
  signal.addEventListener('abort', () => (acc.destroy(), loss.destroy()));
  fill(out, h('section', { class: 'charts' }, acc.el, loss.el), h('h2', null, 'Final figures'), figures(runs.map((r) => r.job)));
  const color = (i: number) => PALETTE[i % PALETTE.length]!;
  acc.update({ title: 'Validation accuracy', yLabel: 'accuracy', yRange: [0, 1], lines: runs.map((r, i) => ({ label: r.job.id, color: color(i), dashed: i % 2 === 1, values: r.metrics.map((m) => m.valAccuracy) })) });
  loss.update({ title: 'Validation loss', yLabel: 'loss', lines: runs.map((r, i) => ({ label: r.job.id, color: color(i), dashed: i % 2 === 1, values: r.metrics.map((m) => m.valLoss) })) });
}

function figures(jobs: FineTune[]): HTMLElement {
  const rows: [string, (j: FineTune) => unknown][] = [
    ['Status', (j) => statusBadge(j.status)],
    ['Base', (j) => j.baseModel],
    ['Dataset', (j) => link(`/datasets/${j.dataset}`, j.dataset)],
    ['Validation accuracy', (j) => pct(j.result?.valAccuracy)],
    ['Validation loss', (j) => num(j.result?.valLoss)],
    ['Top-k accuracy', (j) => (j.result?.validation ? `${pct(j.result.validation.topK.accuracy)} (k=${j.result.validation.topK.k})` : '—')],
    ['Test accuracy', (j) => pct(j.result?.test?.accuracy)],
    ['Scratch baseline', (j) => (j.result?.baseline ? `${pct(j.result.baseline.valAccuracy)} (gain ${num(j.result.baseline.transferGain, 3)})` : '—')],
    ['Best epoch / run', (j) => (j.result ? `${j.result.bestEpoch ?? '—'} / ${j.result.epochsRun}` : '—')],
    ['Training time', (j) => (j.result ? `${(j.result.trainingMs / 1000).toFixed(1)} s` : '—')],
    ['Epochs · batch · lr', (j) => `${j.hyperparameters.epochs} · ${j.hyperparameters.batchSize} · ${j.hyperparameters.learningRate}`],
    ['Unfrozen layers', (j) => JSON.stringify(j.trainableLayers)],
  ];
  return h('div', { class: 'table-wrap' }, h('table', { class: 'compare' },
    h('thead', null, h('tr', null, h('th', { scope: 'col' }, ''), jobs.map((j) => h('th', { scope: 'col' }, link(`/jobs/${j.id}`, j.id))))),
    h('tbody', null, rows.map(([label, fn]) => h('tr', null, h('th', { scope: 'row' }, label), jobs.map((j) => {
      const v = fn(j);
      return h('td', null, v instanceof Node ? v : String(v));
    }))))));
}
