/** Pieces of a job shown on several pages: status badge, progress bar, best validation accuracy. */
import type { FineTune, FineTuneStatus } from '@graft/client';
import { h } from './dom.ts';

export const ACTIVE: readonly FineTuneStatus[] = ['queued', 'running'];
export const isActive = (j: FineTune): boolean => ACTIVE.includes(j.status);

export function statusBadge(status: string): HTMLElement {
  return h('span', { class: `badge status-${status}` }, status);
}

/** Fraction of the planned work done: epochs over both phases, the current one by batches. */
export function fractionDone(j: Pick<FineTune, 'status' | 'progress'>): number {
  if (j.status === 'succeeded') return 1;
  const p = j.progress;
  if (!p.epochs) return 0;
  const inEpoch = p.batches ? p.batch / p.batches : 0;
  return Math.min(1, Math.max(0, (Math.max(0, p.epoch - 1) + inEpoch) / p.epochs));
}

export function progressText(j: Pick<FineTune, 'status' | 'progress'>): string {
  const p = j.progress;
  if (j.status === 'queued') return 'waiting for a worker';
  if (j.status !== 'running') return j.status;
  const batches = p.batches ? `, batch ${p.batch}/${p.batches}` : '';
  return `${p.phase}: epoch ${p.epoch}/${p.epochs}${batches}`;
}

export function progressBar(j: Pick<FineTune, 'status' | 'progress'>, label: string): HTMLElement {
  const f = fractionDone(j);
  return h('div', { class: 'progress' },
    h('progress', { max: 100, value: Math.round(f * 100), 'aria-label': label }),
    h('span', { class: 'progress-text' }, `${Math.round(f * 100)} % · ${progressText(j)}`));
}
