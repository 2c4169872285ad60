/**
 * Datasets: upload (with a progress bar, then the server's check), the list, and one dataset: its
 * class balance as a bar chart, sample thumbnails (images) or rows (texts) per class, and what was
 * skipped with the reasons.
 */
import type { Dataset, DatasetSample, Page } from '@graft/client';
import { errorText, graft, GraftApiError, postFormWithProgress } from '../api.ts';
import { age, bytes, fill, h, link, navigate, pct } from '../dom.ts';
import type { PageContext } from '../main.ts';

export async function datasetsPage({ root, params, signal }: PageContext): Promise<void> {
  const list = h('div', { class: 'table-wrap' });
  const detail = h('section', { class: 'dataset-detail' });
  fill(root, h('div', { class: 'page-head' }, h('h1', null, 'Datasets')), uploadForm(signal), detail, h('h2', null, 'All datasets'), list);

  const page: Page<Dataset> = await graft.datasets.list({ limit: 100 }, { signal });
  fill(list, page.data.length
    ? h('table', null,
      h('thead', null, h('tr', null, ['Dataset', 'Task', 'Examples', 'Classes', 'Balance', 'Size', 'Created'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', null, page.data.map((d) => h('tr', null,
        h('td', null, link(`/datasets/${d.id}`, d.name), h('br'), h('code', { class: 'muted' }, d.id)),
        h('td', null, d.task),
        h('td', { class: 'num' }, examples(d)),
        h('td', { class: 'num' }, d.classes.length),
        h('td', null, d.balance.imbalanced ? h('span', { class: 'badge status-queued' }, `imbalanced ×${d.balance.imbalanceRatio.toFixed(1)}`) : 'balanced'),
        h('td', { class: 'num' }, bytes(d.bytes)),
        h('td', null, age(d.createdAt))))))
    : h('p', { class: 'muted' }, 'No datasets yet.'));

  if (params.id) fill(detail, datasetDetail(await graft.datasets.retrieve(params.id, { signal }), signal));
}

const examples = (d: Dataset): number => (d.task === 'image-classification' ? d.imageCount : d.rowCount);

function uploadForm(signal: AbortSignal): HTMLElement {
  const task = h('select', { id: 'upload-task', name: 'task' },
    h('option', { value: 'image-classification' }, 'images (a .zip with one folder per class)'),
    h('option', { value: 'text-classification' }, 'texts (CSV or JSONL with text and label)'));
  const file = h('input', { id: 'upload-file', type: 'file', name: 'file', required: true, accept: '.zip,.csv,.jsonl,.gz,.tsv' });
  const name = h('input', { id: 'upload-name', name: 'name', placeholder: 'the file name' });
  const bar = h('progress', { max: 100, value: 0, 'aria-label': 'upload progress', hidden: true });
  const status = h('p', { class: 'muted', 'aria-live': 'polite' });
  const error = h('p', { class: 'error', role: 'alert' });
  const button = h('button', { type: 'submit' }, 'Upload');
  const form = h('form', { class: 'form upload', 'aria-label': 'Upload a dataset' },
    h('h2', null, 'Upload'),
    h('div', { class: 'grid-2' },
      h('label', { class: 'field' }, 'Task', task),
      h('label', { class: 'field' }, 'Name (optional)', name)),
    h('label', { class: 'field' }, 'File', file),
    h('div', null, button), bar, status, error);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = file.files?.[0];
    if (!f) return;
    const body = new FormData();
    body.append('task', task.value);
    if (name.value.trim()) body.append('name', name.value.trim());
    body.append('file', f, f.name);
    button.disabled = true;
    bar.hidden = false;
    error.textContent = '';
    status.textContent = `Uploading ${f.name} (${bytes(f.size)})…`;
    try {
      const ds = await postFormWithProgress<Dataset>('/v1/datasets', body, (sent, total) => {
        bar.value = total ? Math.round((sent / total) * 100) : 0;
        status.textContent = sent >= total && total ? 'Uploaded; checking every entry…' : `Uploading: ${bytes(sent)} of ${bytes(total)}`;
      }, signal);
      status.textContent = `Uploaded ${ds.name}: ${examples(ds)} examples in ${ds.classes.length} classes.`;
      navigate(`/datasets/${ds.id}`);
    } catch (err) {
      bar.hidden = true;
      status.textContent = '';
      error.textContent = `Upload refused: ${errorText(err)}${err instanceof GraftApiError && err.param ? ` (field ${err.param})` : ''}`;
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function datasetDetail(d: Dataset, signal: AbortSignal): HTMLElement {
  const max = Math.max(1, ...d.classes.map((c) => ('images' in c ? c.images : c.rows)));
  const samples = h('div', { class: 'samples' }, h('p', { class: 'muted' }, 'Loading samples…'));
  void loadSamples(d, samples, signal);
  const skipped = d.task === 'image-classification'
    ? { count: d.skippedCount, rows: d.skipped.map((s) => [s.path, s.reason] as const) }
    : { count: d.invalidRowCount, rows: d.invalidRows.map((r) => [`line ${r.line}`, `${r.reason} (${r.code})`] as const) };
  return h('div', null,
    h('h2', null, d.name, ' ', h('code', { class: 'muted' }, d.id)),
    h('dl', { class: 'facts' },
      h('div', null, h('dt', null, 'Task'), h('dd', null, d.task)),
      h('div', null, h('dt', null, 'Examples'), h('dd', null, examples(d))),
      h('div', null, h('dt', null, 'Classes'), h('dd', null, d.classes.length)),
      h('div', null, h('dt', null, 'Largest / smallest class'), h('dd', null, `×${d.balance.imbalanceRatio.toFixed(2)}${d.balance.imbalanced ? ' — imbalanced: consider class weights' : ''}`)),
      h('div', null, h('dt', null, 'sha256'), h('dd', null, h('code', null, d.sha256.slice(0, 16)), '…'))),
    h('div', { class: 'actions' }, h('a', { class: 'button', href: `/new?dataset=${d.id}` }, 'Fine-tune on this dataset')),
    h('div', { class: 'two-col' },
      h('section', null, h('h3', null, 'Class balance'),
        h('div', { class: 'bars', role: 'list', 'aria-label': 'Examples per class' }, d.classes.map((c) => {
          const n = 'images' in c ? c.images : c.rows;
          return h('div', { class: 'bar-row', role: 'listitem' },
            h('span', null, c.name),
            h('div', { class: 'bar', style: { width: `${(n / max) * 100}%` }, title: `${c.name}: ${n}` }),
            h('span', { class: 'num' }, `${n} (${pct(c.share, 0)})`));
        }))),
      h('section', null, h('h3', null, `Skipped (${skipped.count})`),
        skipped.rows.length
          ? h('div', { class: 'table-wrap' }, h('table', null, h('tbody', null, skipped.rows.map(([what, why]) => h('tr', null, h('td', null, h('code', null, what)), h('td', null, why))))))
          : h('p', { class: 'muted' }, 'Nothing was skipped.'))),
    h('h3', null, 'Samples'), samples);
}

async function loadSamples(d: Dataset, el: HTMLElement, signal: AbortSignal): Promise<void> {
  try {
    const { data } = await graft.datasets.samples(d.id, { perClass: 8 }, { signal });
    const byClass = new Map<string, DatasetSample[]>();
    for (const s of data) byClass.set(s.class, [...(byClass.get(s.class) ?? []), s]);
    fill(el, [...byClass].map(([cls, items]) => h('section', { class: 'sample-class' },
      h('h4', null, cls),
      d.task === 'image-classification'
        ? h('div', { class: 'thumbs' }, items.map((s) => h('img', { src: s.image, alt: `${cls}: ${s.source}`, title: s.source, loading: 'lazy' })))
        : h('ul', { class: 'rows' }, items.map((s) => h('li', null, h('span', { class: 'muted' }, `${s.source}: `), s.text))))));
  } catch (err) {
    if (!signal.aborted) fill(el, h('p', { class: 'muted' }, `No samples: ${errorText(err)}`));
  }
}
