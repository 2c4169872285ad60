/**
 * Text classification as a `Task`: datasets are the normalised rows file the upload wrote (JSON
 * Lines of `{ line, text, label }`; an example's id is its line number in the uploaded file), model
 * input is [input_ids, attention_mask] int32 [n, length ≤ maxLength], texts are never augmented,
 * bundles carry the tokenizer files and `text.json`. Encoders load lazily (tokenizers, onnxruntime).
 */
import type { Example } from '../../data/example.ts';
import { TrainingError } from '../../errors.ts';
import type { Task, TaskDataset } from '../task.ts';
import { textBundle } from './bundle.ts';
import { loadTextDataset } from './dataset/rows-file.ts';

export const textTask: Task = {
  name: 'text-classification',
  units: { one: 'text', many: 'texts', countField: 'rows', inputIdentity: 'tokenizer' },
  augments: false,
  readDataset: readTextDataset,
  openEncoder: async (base, opts) => (await import('./encoder.ts')).openTextEncoder(base, opts),
  bundle: textBundle,
};

/** A rows file as examples: classes sorted by name, one example per row (its line number as id). */
export async function readTextDataset(path: string): Promise<TaskDataset> {
  let loaded;
  try {
    loaded = await loadTextDataset(path);
  } catch (err) {
    throw new TrainingError('invalid_text_dataset', `The dataset's rows file cannot be read: ${(err as Error).message}.`);
  }
  const { rows, classes, labels } = loaded;
  if (classes.length < 2) throw new TrainingError('too_few_classes', `The dataset has ${classes.length} class; a classifier needs at least 2.`);
  const classCounts = classes.map(() => 0);
  const examples: Example[] = rows.map((r, i) => {
    classCounts[labels[i]!]!++;
    return { id: String(r.line), label: labels[i]! };
  });
  return { classes, classCounts, examples, total: rows.length, skipped: 0 };
}
