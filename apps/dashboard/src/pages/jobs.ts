/**
 * Jobs: the list with a status filter. Live: each queued or running job on the page follows its
 * feed (progress, metrics, end); the list itself is re-read every 10 s to show new jobs.
 */
import type { EpochMetrics, FineTune, FineTuneStatus } from '@graft/client';
import { errorText, graft } from '../api.ts';
import { age, fill, h, link, navigate, pct } from '../dom.ts';
import { isActive, progressBar, statusBadge } from '../job-bits.ts';
import type { PageContext } from '../main.ts';

const MAX_LIVE = 10;
export const FINE_TUNE_STATUSES: readonly FineTuneStatus[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];

export async function jobsPage({ root, query, signal }: PageContext): Promise<void> {
  const status = (FINE_TUNE_STATUSES as readonly string[]).includes(query.get('status') ?? '') ? (query.get('status') as FineTuneStatus) : undefined;
  const filter = h('select', { id: 'status-filter', onchange: () => navigate(filter.value ? `/?status=${filter.value}` : '/') },
    h('option', { value: '' }, 'all'),
    FINE_TUNE_STATUSES.map((s) => h('option', { value: s, selected: s === status }, s)));
  const body = h('tbody');
  const note = h('p', { class: 'muted', 'aria-live': 'polite' });
  fill(root,
    h('div', { class: 'page-head' },
      h('h1', null, 'Fine-tunes'),
      h('label', { class: 'inline' }, 'Status ', filter),
      h('a', { class: 'button', href: '/new' }, 'New fine-tune')),
    h('div', { class: 'table-wrap' }, h('table', { class: 'jobs' },
      h('thead', null, h('tr', null, ['Job', 'Status', 'Base', 'Dataset', 'Progress', 'Best val acc', 'Created'].map((c) => h('th', { scope: 'col' }, c)))),
      body)),
    note);

  const rows = new Map<string, { job: FineTune; best: number | null; tr: HTMLTableRowElement }>();
  const following = new Set<string>();

  const draw = (id: string) => {
    const r = rows.get(id)!;
    const j = r.job;
    fill(r.tr,
      h('td', null, link(`/jobs/${j.id}`, j.id)),
      h('td', null, statusBadge(j.status)),
      h('td', null, j.baseModel),
      h('td', null, j.dataset),
      h('td', null, progressBar(j, `progress of ${j.id}`)),
      h('td', { class: 'num' }, pct(r.best)),
      h('td', null, h('time', { datetime: j.createdAt, title: j.createdAt }, age(j.createdAt))));
  };

  const follow = async (id: string) => {
    following.add(id);
    try {
      for await (const m of graft.fineTunes.feed(id, { signal })) {
        const r = rows.get(id);
        if (!r) break;
        if (m.type === 'progress') r.job = { ...r.job, status: 'running', progress: m.data };
        else if (m.type === 'metric') r.best = best(r.best, m.data);
        else if (m.type === 'event' && m.data.type === 'status') r.job = await graft.fineTunes.retrieve(id, { signal });
        else if (m.type === 'end') r.job = m.data, r.best = m.data.result?.valAccuracy ?? r.best;
        draw(id);
      }
    } catch (err) {
      if (!signal.aborted) note.textContent = `Live updates of ${id} stopped: ${errorText(err)}`;
    }
  };

  const load = async () => {
    const page = await graft.fineTunes.list({ limit: 50, status }, { signal });
    if (!page.data.length) {
      fill(body, h('tr', null, h('td', { colspan: 7, class: 'muted' }, status ? `No ${status} fine-tunes.` : 'No fine-tunes yet: upload a dataset, then start one.')));
      rows.clear();
      return;
    }
    const trs: HTMLTableRowElement[] = [];
    for (const j of page.data) {
      const old = rows.get(j.id);
      const tr = old?.tr ?? h('tr', { 'data-job': j.id });
      // A followed job's row is kept as its feed has it (fresher than the list).
      if (!old || !following.has(j.id)) rows.set(j.id, { job: j, best: j.result?.valAccuracy ?? old?.best ?? j.metrics?.valAccuracy ?? null, tr });
      draw(j.id);
      trs.push(tr);
    }
    fill(body, trs);
    note.textContent = page.hasMore ? 'Showing the 50 newest.' : '';
    for (const j of page.data.filter(isActive).slice(0, MAX_LIVE)) if (!following.has(j.id)) void follow(j.id);
  };

  await load();
  const timer = setInterval(() => void load().catch((err) => (note.textContent = errorText(err))), 10_000);
  signal.addEventListener('abort', () => clearInterval(timer));
}

function best(current: number | null, m: EpochMetrics): number | null {
  if (m.phase === 'baseline' || m.valAccuracy === null) return current;
  return current === null ? m.valAccuracy : Math.max(current, m.valAccuracy);
}
