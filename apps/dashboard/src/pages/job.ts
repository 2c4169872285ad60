/**
 * One job: live curves and progress from its feed (Server-Sent Events through the client: the
 * feed replays the job's history, then goes live; nothing polls), the events log with warnings
 * highlighted, and once it has finished its results: confusion matrix, per-class scores, the
 * transfer-vs-scratch comparison, checkpoints, the model card.
 */
import type { Checkpoint, EpochMetrics, FineTune, FineTuneEvent } from '@graft/client';
import { downloadLink, errorText, graft } from '../api.ts';
import { LineChart } from '../charts.ts';
import { jobCurves } from '../curves.ts';
import { bytes, fill, h, link, num, pct } from '../dom.ts';
import { confusionHeatmap, perClassTable } from '../heatmap.ts';
import { isActive, progressBar, statusBadge } from '../job-bits.ts';
import type { PageContext } from '../main.ts';
import { modelCard } from './model-card.ts';

/** Event types that deserve a second look, highlighted whatever their level. */
const NOTABLE = new Set(['overfitting', 'imbalance', 'task_mismatch', 'leakage']);

export async function jobPage({ root, params, signal }: PageContext): Promise<void> {
  const id = params.id!;
  let job = await graft.fineTunes.retrieve(id, { signal });
  const metrics: EpochMetrics[] = [];
  const events: FineTuneEvent[] = [];
  let checkpoints: Checkpoint[] = [];

  const head = h('div', { class: 'page-head' });
  const summary = h('div', { class: 'summary' });
  const progress = h('div', { class: 'job-progress', 'aria-live': 'polite' });
  const loss = new LineChart('Loss');
  const accuracy = new LineChart('Accuracy');
  const log = h('ol', { class: 'events', 'aria-label': 'Events' });
  const results = h('section', { class: 'results', 'aria-label': 'Results' });
  const cks = h('section', { class: 'checkpoints' });
  const message = h('p', { class: 'error', role: 'alert', hidden: true });
  signal.addEventListener('abort', () => (loss.destroy(), accuracy.destroy()));

  fill(root, head, message, summary, progress,
    h('section', { class: 'charts', 'aria-label': 'Training curves' }, loss.el, accuracy.el),
    h('div', { class: 'two-col' },
      h('section', null, h('h2', null, 'Events'), h('div', { class: 'events-box' }, log)),
      cks),
    results);

  const cancel = async (button: HTMLButtonElement) => {
    button.disabled = true;
    button.textContent = 'Cancelling…';
    try {
      job = await graft.fineTunes.cancel(id);
      draw();
    } catch (err) {
      showError(`Could not cancel: ${errorText(err)}`);
      button.disabled = false;
    }
  };
  const showError = (text: string) => {
    message.textContent = text;
    message.hidden = false;
  };

  const drawHead = () => {
    const cancelButton: HTMLButtonElement = h('button', { type: 'button', class: 'danger', onclick: () => void cancel(cancelButton) }, 'Cancel job');
    if (job.cancelRequestedAt && isActive(job)) cancelButton.disabled = true, cancelButton.textContent = 'Cancelling…';
    fill(head,
      h('h1', null, 'Fine-tune ', h('code', null, job.id), ' ', statusBadge(job.status)),
      h('div', { class: 'actions' },
        isActive(job) && cancelButton,
        job.model && downloadLink(job.model.url, `${job.id}.zip`, `Download model (${bytes(job.model.bytes)})`, { class: 'button' }, (err) => showError(errorText(err))),
        job.status === 'succeeded' && h('a', { class: 'button', href: `/try?job=${job.id}` }, 'Try the model'),
        job.status === 'succeeded' && h('a', { class: 'button', href: `/new?base=${job.id}&dataset=${job.dataset}` }, 'Use as base'),
        h('a', { class: 'button secondary', href: `/compare?ids=${job.id}` }, 'Compare')));
    fill(summary, h('dl', { class: 'facts' },
      fact('Base', job.baseModel),
      fact('Dataset', link(`/datasets/${job.dataset}`, job.dataset)),
      job.testDataset && fact('Test set', link(`/datasets/${job.testDataset}`, job.testDataset)),
      fact('Epochs', `${job.hyperparameters.epochs} head + ${job.hyperparameters.fineTuneEpochs ?? 0} fine-tune`),
      fact('Batch', job.hyperparameters.batchSize),
      fact('Learning rate', job.hyperparameters.learningRate),
      fact('Trainable layers', JSON.stringify(job.trainableLayers)),
      fact('Baseline', job.baseline),
      job.error && fact('Error', h('span', { class: 'error' }, `${job.error.message} (${job.error.code})`))));
  };

  const drawProgress = () => fill(progress, progressBar(job, 'job progress'));

  const drawCharts = () => {
    const c = jobCurves(metrics);
    loss.update(c.loss);
    accuracy.update(c.accuracy);
  };

  const drawCheckpoints = () => fill(cks,
    h('h2', null, 'Checkpoints'),
    checkpoints.length
      ? h('div', { class: 'table-wrap' }, h('table', null,
        h('thead', null, h('tr', null, ['Phase', 'Epoch', 'Val loss', 'Val acc', 'Size', ''].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', null, checkpoints.map((c) => h('tr', null,
          h('td', null, c.phase, c.isBest && h('span', { class: 'badge best' }, 'best')),
          h('td', { class: 'num' }, c.batch === null ? c.epoch : `${c.epoch} (batch ${c.batch})`),
          h('td', { class: 'num' }, num(c.valLoss)),
          h('td', { class: 'num' }, pct(c.valAccuracy)),
          h('td', { class: 'num' }, bytes(c.bytes)),
          h('td', null, downloadLink(c.url, `${c.id}.zip`, 'Download', {}, (err) => showError(errorText(err)))))))))
      : h('p', { class: 'muted' }, 'None yet.'));

  const drawResults = () => {
    const r = job.result;
    if (!r) return fill(results);
    const base = r.baseline;
    fill(results,
      h('h2', null, 'Results'),
      h('dl', { class: 'facts' },
        fact('Validation accuracy', pct(r.valAccuracy)),
        fact('Validation loss', num(r.valLoss)),
        r.validation && fact(`Top-${r.validation.topK.k} accuracy`, pct(r.validation.topK.accuracy)),
        r.test && fact('Test accuracy', pct(r.test.accuracy)),
        fact('Best epoch', r.bestEpoch ?? '—'),
        fact('Epochs run', `${r.epochsRun}${r.stoppedEarly ? ' (stopped early)' : ''}`),
        fact('Images', `${r.trainImages} train · ${r.validationImages} validation`),
        fact('Training time', `${(r.trainingMs / 1000).toFixed(1)} s on ${r.backend}`)),
      base && h('div', { class: 'baseline' },
        h('h3', null, 'Transfer vs. from scratch'),
        h('p', null, `Transfer learning: ${pct(r.valAccuracy)} validation accuracy; the same architecture from random weights: ${pct(base.valAccuracy)} (${base.epochsRun} epochs, ${(base.trainingMs / 1000).toFixed(1)} s). `,
          h('strong', null, `Gain: ${base.transferGain === null ? '—' : `${base.transferGain >= 0 ? '+' : ''}${(base.transferGain * 100).toFixed(1)} points`}`), '. Both are drawn on the curves above.')),
      h('div', { class: 'two-col' },
        h('section', null, h('h3', null, 'Confusion matrix (validation)'), confusionHeatmap(r.classes, r.confusionMatrix),
          h('p', { class: 'muted' }, 'Colour: share of the true class (row) on the viridis scale; the count is in each cell.')),
        h('section', null, h('h3', null, 'Per class (validation)'), perClassTable(r.perClass))),
      job.status === 'succeeded' && modelCard(job, events));
  };

  const draw = () => {
    drawHead();
    drawProgress();
    drawCharts();
    drawCheckpoints();
    drawResults();
  };

  const addEvent = (e: FineTuneEvent) => {
    events.push(e);
    const notable = e.level !== 'info' || NOTABLE.has(e.type);
    log.append(h('li', { class: `event level-${e.level}${notable ? ' notable' : ''}` },
      h('time', { datetime: e.createdAt }, new Date(e.createdAt).toLocaleTimeString()),
      h('span', { class: 'event-type' }, e.type),
      notable && e.level !== 'error' && h('strong', { class: 'sr-warning' }, 'Warning: '),
      e.message));
    log.parentElement!.scrollTop = log.parentElement!.scrollHeight;
  };

  const loadCheckpoints = async () => {
    try {
      checkpoints = (await graft.fineTunes.checkpoints(id, { signal })).data;
      drawCheckpoints();
    } catch (err) {
      if (!signal.aborted) showError(errorText(err));
    }
  };

  draw();
  void loadCheckpoints();

  // Redraws batched per animation frame: a replayed history arrives as a burst of messages.
  let pending = false;
  const soon = (fn: () => void) => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => ((pending = false), fn()));
  };
  try {
    for await (const m of graft.fineTunes.feed(id, { signal })) {
      if (m.type === 'event') {
        addEvent(m.data);
        if (m.data.type === 'status') job = await graft.fineTunes.retrieve(id, { signal }), drawHead();
        if (m.data.type === 'checkpoint') void loadCheckpoints();
        // The scratch baseline's epochs are events of their own (not the job's metrics): drawn on the same axes.
        if (m.data.type === 'baseline_epoch' && m.data.data) {
          metrics.push({ ...(m.data.data as unknown as EpochMetrics), phase: 'baseline' });
          soon(drawCharts);
        }
      } else if (m.type === 'progress') {
        job = { ...job, progress: m.data };
        soon(drawProgress);
      } else if (m.type === 'metric') {
        metrics.push(m.data);
        soon(() => (drawCharts(), drawProgress()));
      } else if (m.type === 'end') {
        job = m.data;
        draw();
        void loadCheckpoints();
      }
    }
  } catch (err) {
    if (!signal.aborted) showError(`The live feed stopped: ${errorText(err)}. Reload the page to resume.`);
  }
}

function fact(label: string, value: unknown): HTMLElement {
  return h('div', null, h('dt', null, label), h('dd', null, value instanceof Node ? value : String(value)));
}
