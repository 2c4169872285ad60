/** Try a model: a finished job, then an image dropped (or chosen) or texts typed, and its top-k answer. */
import type { Prediction } from '@graft/client';
import { errorText, graft } from '../api.ts';
import { fill, h, navigate, pct } from '../dom.ts';
import type { PageContext } from '../main.ts';

const TOP_K = 3;

export async function tryPage({ root, query, signal }: PageContext): Promise<void> {
  const done = await graft.fineTunes.list({ limit: 100, status: 'succeeded' }, { signal });
  const id = query.get('job') ?? done.data[0]?.id ?? '';
  const pick = h('select', { id: 'try-job', onchange: () => navigate(`/try?job=${pick.value}`) },
    done.data.map((j) => h('option', { value: j.id, selected: j.id === id }, `${j.id} — ${j.baseModel} on ${j.dataset}`)));
  const out = h('div', { class: 'try-out', 'aria-live': 'polite' });
  fill(root, h('h1', null, 'Try a model'), h('label', { class: 'field' }, 'Finished fine-tune', pick), out);
  if (!id) return fill(out, h('p', { class: 'muted' }, 'No finished fine-tune yet.'));
  const job = await graft.fineTunes.retrieve(id, { signal });
  const dataset = await graft.datasets.retrieve(job.dataset, { signal }).catch(() => null);
  const results = h('div', { class: 'predictions' });
  const error = h('p', { class: 'error', role: 'alert' });

  const run = async (inputs: (string | Blob)[], previews: (HTMLElement | null)[]) => {
    error.textContent = '';
    fill(results, h('p', { class: 'muted' }, 'Predicting…'));
    try {
      const list = await graft.fineTunes.predict(id, inputs, { topK: Math.min(TOP_K, job.result?.classes.length ?? TOP_K), signal });
      const t = list.timing;
      const by = list.runtime.name === 'onnx' ? 'ONNX Runtime' : 'TensorFlow.js';
      fill(results,
        h('p', { class: 'muted answered-by' }, `Answered by ${by} in ${t.inferenceMs} ms (loading the model ${t.loadMs} ms, waiting ${t.queuedMs} ms)${list.runtime.reason ? `; not ONNX Runtime: ${list.runtime.reason}` : ''}.`),
        ...list.data.map((p, i) => answer(p, previews[i] ?? null)));
    } catch (err) {
      fill(results);
      error.textContent = errorText(err);
    }
  };

  if (dataset?.task === 'text-classification') {
    const text = h('textarea', { id: 'try-text', rows: 5, cols: 60, placeholder: 'One text per line' });
    const form = h('form', { class: 'form' }, h('label', { class: 'field', for: 'try-text' }, 'Texts (one per line, at most 32)', text), h('div', null, h('button', { type: 'submit' }, 'Predict')));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const lines = text.value.split('\n').map((s) => s.trim()).filter(Boolean).slice(0, 32);
      if (lines.length) void run(lines, lines.map((l) => h('blockquote', null, l)));
    });
    fill(out, form, error, results);
    return;
  }
  const input = h('input', { type: 'file', id: 'try-file', accept: 'image/*', multiple: true });
  const files = (list: FileList | null) => {
    const chosen = [...(list ?? [])].filter((f) => f.type.startsWith('image/')).slice(0, 32);
    if (!chosen.length) return;
    const previews = chosen.map((f) => {
      const url = URL.createObjectURL(f);
      signal.addEventListener('abort', () => URL.revokeObjectURL(url));
      return h('img', { src: url, alt: f.name, class: 'preview' });
    });
    void run(chosen, previews);
  };
  input.addEventListener('change', () => files(input.files));
  const drop = h('div', { class: 'drop' },
    h('p', null, 'Drop images here, or ', h('label', { for: 'try-file', class: 'linkish' }, 'choose files'), '.'), input);
  drop.addEventListener('dragover', (e) => (e.preventDefault(), drop.classList.add('over')));
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    files(e.dataTransfer?.files ?? null);
  });
  fill(out, h('p', { class: 'muted' }, `Classes: ${job.result?.classes.join(', ') ?? '—'}`), drop, error, results);
}

function answer(p: Prediction, preview: HTMLElement | null): HTMLElement {
  return h('article', { class: 'prediction' },
    preview,
    h('div', null,
      h('p', null, 'Answer: ', h('strong', { class: 'top-label' }, p.label), ` (${pct(p.probability)})`),
      h('ol', { class: 'topk', 'aria-label': 'Top answers' }, p.topK.map((t) => h('li', null,
        h('span', null, t.label),
        h('div', { class: 'bar', style: { width: `${Math.max(1, t.probability * 100)}%` } }),
        h('span', { class: 'num' }, pct(t.probability)))))));
}
