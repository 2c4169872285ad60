/**
 * One gradient step of graft's 2-block text encoder on wasm, built with graft's own Dense and
 * LayerNorm layers against the same encoder built with tfjs-layers' Dense and LayerNormalization
 * (why graft has its own: see packages/engine/README.md, "graft's text encoder"). One process, the
 * same weights' shapes, inputs and loss; the claim is the ratio.
 *
 *   node --import tsx bench/text-encoder-grad.ts [--length 64] [--batch 32] [--repeats 3]
 */
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../packages/engine/src/backend/backend.ts';
import { buildGraftEncoder, DEFAULT_CONFIG } from '../packages/engine/src/tasks/text/graft-encoder/architecture.ts';
import { Dense, LayerNorm } from '../packages/engine/src/tasks/text/graft-encoder/layers.ts';

const { values } = parseArgs({ options: { length: { type: 'string', default: '64' }, batch: { type: 'string', default: '32' }, repeats: { type: 'string', default: '3' } } });
const L = Number(values.length);
const B = Number(values.batch);
const backend = await initBackend();
const config = { ...DEFAULT_CONFIG, maxLength: L };

/** The same encoder with tfjs-layers' Dense / LayerNormalization swapped in for graft's (same names, same graph). */
function withTfjsLayers(): tf.LayersModel {
  const graft = buildGraftEncoder(config, { seed: 1 });
  const topology = JSON.parse(JSON.stringify(graft.toJSON(null, false))) as { config: { layers: { class_name: string; config: Record<string, unknown> }[] } };
  for (const l of topology.config.layers) {
    if (l.class_name === Dense.className) {
      l.class_name = 'Dense';
      l.config = { name: l.config.name, units: l.config.units, activation: l.config.activation, trainable: true };
    } else if (l.class_name === LayerNorm.className) {
      l.class_name = 'LayerNormalization';
      l.config = { name: l.config.name, epsilon: l.config.epsilon, axis: -1, trainable: true };
    }
  }
  graft.dispose();
  return tf.models.modelFromJSON({ modelTopology: topology } as never) as unknown as tf.LayersModel;
}

async function stepMs(model: tf.LayersModel): Promise<number> {
  const ids = tf.randomUniform([B, L], 5, config.vocabSize, 'int32');
  const mask = tf.ones([B, L], 'int32');
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const one = () =>
    tf.tidy(() => {
      const { grads } = tf.variableGrads(() => tf.mean(tf.square((model.apply([ids, mask], { training: true }) as tf.Tensor[])[0]!)) as tf.Scalar, vars);
      for (const g of Object.values(grads)) g.dataSync();
    });
  one(); // warm-up
  const times: number[] = [];
  for (let i = 0; i < Number(values.repeats); i++) {
    const t = performance.now();
    one();
    times.push(performance.now() - t);
  }
  tf.dispose([ids, mask]);
  return Math.min(...times);
}

const ours = await stepMs(buildGraftEncoder(config, { seed: 1 }));
const theirs = await stepMs(await withTfjsLayers());
console.log(`backend ${backend.name}, ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), node ${process.version}; 2 blocks, hidden 128, batch ${B} × ${L} tokens; best of ${values.repeats}`);
console.log(`gradient step: graft's Dense/LayerNorm ${ours.toFixed(0)} ms; tfjs-layers' Dense/LayerNormalization ${theirs.toFixed(0)} ms → ${(theirs / ours).toFixed(1)}x`);
