/**
 * Stage 9, evaluate exactly the model that is exported (after its best weights were put back), and
 * the baseline: on the validation split and the test set. When the encoder never changed, the
 * validation features already are what the exported model computes; otherwise the examples are
 * read again with the exact preprocessing of the bundle.
 */
import * as tf from '@tensorflow/tfjs';
import type { Example } from '../../data/example.ts';
import { Scorer } from '../../evaluate/metrics.ts';
import { scoreHeadOnFeatures, scoreOnDataset, scoreOnDatasetAsync, type AsyncPredict, type Predict } from '../../evaluate/score.ts';
import type { Training } from '../training.ts';
import type { BaselineResult } from './baseline.ts';

export interface Evaluation {
  validation: Scorer;
  test: Scorer | null;
  baseline: { validation: Scorer; test: Scorer | null } | null;
}

/**
 * `onnxPredict`: after phase 2 with its frozen part on ONNX Runtime, the exported model's predictions
 * with that part there (checked against tfjs: max relative error < 1e-4), the unfrozen top and the
 * head in tfjs — what the validation and test sets are scored with, instead of the whole model in tfjs.
 */
export async function evaluate(t: Training, datasetPath: string, encoderChanged: boolean, baseline: BaselineResult | null, onnxPredict: AsyncPredict | null = null): Promise<Evaluation> {
  const { ctx, data, model, inputs, encoder } = t;
  const numClasses = data.classes.length;
  const k = data.topK;
  const nVal = data.split.validation.length;
  const { testSet } = data;
  const onDatasetOnnx = encoderChanged ? onnxPredict : null;
  await ctx.emit({
    level: 'info',
    type: 'evaluation',
    message: `Evaluating on ${nVal} validation${testSet ? ` and ${testSet.examples.length} test` : ''} ${ctx.task.units.many}${onDatasetOnnx ? ' (the frozen layers below the fine-tuned top on ONNX Runtime)' : ''}.`,
    ...(onDatasetOnnx ? { data: { frozenPartRuntime: 'onnx' } } : {}),
  });
  const read = (path: string) => (examples: Parameters<typeof encoder.inputs.readExact>[1]) => encoder.inputs.readExact(path, examples, ctx.signal);
  const transfer = requirePredict(model.predict);
  const onDataset: Predict[] = [...(encoderChanged && !onDatasetOnnx ? [transfer()] : []), ...(baseline ? [baseline.predict] : [])];
  const valScores = nVal ? await scoreOnDataset(read(datasetPath), data.split.validation, onDataset, numClasses, k) : onDataset.map(() => new Scorer(numClasses, k));
  const validation = onDatasetOnnx
    ? await scoreOnDatasetAsync(read(datasetPath), data.split.validation, onDatasetOnnx, numClasses, k)
    : encoderChanged
    ? valScores[0]!
    : inputs.valX
      ? await scoreHeadOnFeatures(model.head, inputs.valX, inputs.labels.validation, numClasses, k)
      : new Scorer(numClasses, k);
  // Features from another runtime (ONNX) of an encoder that never changed: the test set through them too.
  const testOnFeatures = !model.predict || (!encoderChanged && encoder.featureRuntime?.runtime === 'onnx');
  const testScores = !testSet
    ? null
    : testOnFeatures || onDatasetOnnx
      ? [
          onDatasetOnnx ? await scoreOnDatasetAsync(read(testSet.path), testSet.examples, onDatasetOnnx, numClasses, k) : await scoreTestOnFeatures(t, testSet),
          ...(baseline ? await scoreOnDataset(read(testSet.path), testSet.examples, [baseline.predict], numClasses, k) : []),
        ]
      : await scoreOnDataset(read(testSet.path), testSet.examples, [transfer(), ...(baseline ? [baseline.predict] : [])], numClasses, k);
  return {
    validation,
    test: testScores ? testScores[0]! : null,
    baseline: baseline ? { validation: valScores.at(-1)!, test: testScores ? testScores[1]! : null } : null,
  };
}

/**
 * An encoder outside tfjs (ONNX) never changes and has no per-batch `run`: the test set is scored
 * as the exported bundle computes it, the encoder's features (one pass) through the head. A frozen
 * layers encoder whose features come from ONNX Runtime is scored the same way (its features match
 * tfjs within the converter's check).
 */
async function scoreTestOnFeatures(t: Training, testSet: { path: string; examples: readonly Example[] }): Promise<Scorer> {
  const { ctx, data, model, encoder } = t;
  const ids = testSet.examples.map((e) => e.id);
  const features = await encoder.inputs.pass(testSet.path, { ids, features: 'all', cache: null, signal: ctx.signal });
  const x = tf.tensor2d(features!, [ids.length, encoder.dim]);
  try {
    return await scoreHeadOnFeatures(model.head, x, testSet.examples.map((e) => e.label), data.classes.length, data.topK);
  } finally {
    x.dispose();
  }
}

/** The exported model's predictions on model inputs; an encoder outside tfjs cannot give them. */
function requirePredict(predict: Predict | null): () => Predict {
  return () => {
    if (!predict) throw new Error('scoring raw inputs needs an encoder that runs in tfjs (an encoder outside tfjs is scored on its features)');
    return predict;
  };
}
