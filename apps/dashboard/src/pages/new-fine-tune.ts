/**
 * New fine-tune: dataset and base (with what the base is), the common options with their defaults
 * shown, the rest under "Advanced". Fields are named by the API's `param` paths, so a refusal
 * (`{ error: { param: "hyperparameters.epochs" } }`) is written next to its field.
 */
import type { BaseModel, CreateFineTuneBody, Dataset } from '@graft/client';
import { errorText, graft, GraftApiError } from '../api.ts';
import { fill, h, navigate } from '../dom.ts';
import type { PageContext } from '../main.ts';

// The contracts' defaults (HYPERPARAMETER_DEFAULTS, VALIDATION_SPLIT_DEFAULT), shown as placeholders.
const DEFAULTS = { epochs: 10, batchSize: 32, learningRate: 0.001, dropout: 0.2, headUnits: 128, labelSmoothing: 0, l2: 0, validationSplit: 0.2, topK: 3, patience: 3 };

interface Field { el: HTMLInputElement | HTMLSelectElement; wrap: HTMLElement; error: HTMLElement }

export async function newFineTunePage({ root, query, signal }: PageContext): Promise<void> {
  const [datasets, bases] = await Promise.all([graft.datasets.list({ limit: 100 }, { signal }), graft.baseModels.list({ limit: 100 }, { signal })]);
  const fields = new Map<string, Field>();
  const field = (param: string, label: string, el: HTMLInputElement | HTMLSelectElement, hint?: string): HTMLElement => {
    el.id = `f-${param.replaceAll('.', '-')}`;
    el.name = param;
    const error = h('span', { class: 'field-error', id: `${el.id}-error`, 'aria-live': 'polite' });
    el.setAttribute('aria-describedby', `${el.id}-error`);
    const wrap = h('div', { class: 'field' }, h('label', { for: el.id }, label), el, hint && h('span', { class: 'hint' }, hint), error);
    fields.set(param, { el, wrap, error });
    return wrap;
  };
  const numberInput = (placeholder: number | string, step = 'any') => h('input', { type: 'number', step, placeholder: String(placeholder), inputmode: 'decimal' });

  const dataset = h('select', null, h('option', { value: '' }, '— choose —'),
    datasets.data.map((d: Dataset) => h('option', { value: d.id, selected: d.id === query.get('dataset') }, `${d.name} (${d.task === 'image-classification' ? `${d.imageCount} images` : `${d.rowCount} rows`}, ${d.classes.length} classes) — ${d.id}`)));
  const base = h('select', null, h('option', { value: '' }, '— choose —'),
    bases.data.map((b: BaseModel) => h('option', { value: b.id, selected: b.id === query.get('base') }, `${b.name} — ${b.id}`)));
  const queryBase = query.get('base');
  if (queryBase && !bases.data.some((b) => b.id === queryBase)) base.append(h('option', { value: queryBase, selected: true }, `fine-tune ${queryBase}`));
  const baseInfo = h('p', { class: 'hint', 'aria-live': 'polite' });
  const describeBase = async () => {
    const b = bases.data.find((x) => x.id === base.value) ?? (base.value ? await graft.baseModels.retrieve(base.value).catch(() => null) : null);
    baseInfo.textContent = b ? `${b.task}; input ${b.inputShape.join('×')}; license ${b.license}; pretrained on ${b.pretrainedOn}` : '';
  };
  base.addEventListener('change', () => void describeBase());
  void describeBase();

  const earlyStopping = h('input', { type: 'checkbox', checked: true });
  const baseline = h('select', null, h('option', { value: 'none' }, 'none'), h('option', { value: 'scratch' }, 'scratch: also train from random weights'));
  const trainable = h('input', { placeholder: 'none', inputmode: 'numeric' });
  const testDataset = h('select', null, h('option', { value: '' }, 'none'), datasets.data.map((d: Dataset) => h('option', { value: d.id }, `${d.name} — ${d.id}`)));
  const formError = h('p', { class: 'error', role: 'alert' });
  const submit = h('button', { type: 'submit' }, 'Start fine-tune');

  const form = h('form', { class: 'form', novalidate: true, 'aria-label': 'New fine-tune' },
    field('dataset', 'Dataset', dataset),
    h('div', null, field('baseModel', 'Base model', base), baseInfo),
    h('div', { class: 'grid-2' },
      field('hyperparameters.epochs', 'Epochs (head)', numberInput(DEFAULTS.epochs, '1'), `default ${DEFAULTS.epochs}`),
      field('hyperparameters.batchSize', 'Batch size', numberInput(DEFAULTS.batchSize, '1'), `default ${DEFAULTS.batchSize}`),
      field('hyperparameters.learningRate', 'Learning rate', numberInput(DEFAULTS.learningRate), `default ${DEFAULTS.learningRate} (Adam)`),
      field('trainableLayers', 'Unfrozen top layers', trainable, 'default none (only the new head trains); a number k unfreezes the top k'),
      field('baseline', 'Baseline', baseline, 'default none'),
      h('div', { class: 'field' }, h('label', { class: 'inline' }, earlyStopping, 'Early stopping'), h('span', { class: 'hint' }, `default on: patience ${DEFAULTS.patience} on validation loss, best weights restored`))),
    h('details', null, h('summary', null, 'Advanced'),
      h('div', { class: 'grid-2' },
        field('validationSplit', 'Validation split', numberInput(DEFAULTS.validationSplit), `default ${DEFAULTS.validationSplit}, stratified`),
        field('hyperparameters.fineTuneEpochs', 'Fine-tune epochs', numberInput('10 when layers are unfrozen', '1'), 'phase 2'),
        field('hyperparameters.fineTuneLearningRate', 'Fine-tune learning rate', numberInput('learning rate × 0.1')),
        field('hyperparameters.dropout', 'Dropout', numberInput(DEFAULTS.dropout), `default ${DEFAULTS.dropout}`),
        field('hyperparameters.headUnits', 'Head units', numberInput(DEFAULTS.headUnits, '1'), `default ${DEFAULTS.headUnits}; 0 for none`),
        field('hyperparameters.labelSmoothing', 'Label smoothing', numberInput(DEFAULTS.labelSmoothing), 'default 0'),
        field('hyperparameters.l2', 'L2', numberInput(DEFAULTS.l2), 'default 0'),
        field('topK', 'Top-k', numberInput(DEFAULTS.topK, '1'), `default ${DEFAULTS.topK}`),
        field('seed', 'Seed', numberInput('random', '1'), 'same seed, data and backend: same split and metrics'),
        field('testDataset', 'Test dataset', testDataset, 'evaluated once at the end'))),
    formError, h('div', null, submit));

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    for (const f of fields.values()) f.error.textContent = '', f.wrap.classList.remove('has-error'), f.el.removeAttribute('aria-invalid');
    formError.textContent = '';
    const body = collect(fields, earlyStopping.checked);
    submit.disabled = true;
    try {
      const job = await graft.fineTunes.create(body);
      navigate(`/jobs/${job.id}`);
    } catch (err) {
      const param = err instanceof GraftApiError ? err.param : undefined;
      const f = param ? fields.get(param) ?? fields.get(param.split('.').slice(0, 2).join('.')) ?? fields.get(param.split('.')[0]!) : undefined;
      if (f) {
        f.error.textContent = errorText(err);
        f.wrap.classList.add('has-error');
        f.el.setAttribute('aria-invalid', 'true');
        f.el.focus();
      } else formError.textContent = `Not started: ${errorText(err)}`;
    } finally {
      submit.disabled = false;
    }
  });
  fill(root, h('h1', null, 'New fine-tune'), form);
}

/** The request body: only what the person filled in, so the API's defaults apply to the rest. */
function collect(fields: Map<string, Field>, earlyStopping: boolean): CreateFineTuneBody {
  const body: Record<string, unknown> = {};
  for (const [param, { el }] of fields) {
    const raw = el.value.trim();
    if (raw === '') continue;
    const value = el instanceof HTMLInputElement && el.type === 'number' ? Number(raw) : param === 'trainableLayers' && /^\d+$/.test(raw) ? Number(raw) : raw;
    const [a, b] = param.split('.') as [string, string | undefined];
    if (b) body[a] = { ...(body[a] as object | undefined), [b]: value };
    else body[a] = value;
  }
  if (!earlyStopping) body.earlyStopping = false;
  return body as unknown as CreateFineTuneBody;
}
