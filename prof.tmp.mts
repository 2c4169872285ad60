import * as tf from '@tensorflow/tfjs';
import { initBackend } from './packages/engine/src/backend.ts';
import { buildGraftEncoder, DEFAULT_CONFIG } from './packages/engine/src/tasks/text/graft-encoder/architecture.ts';
await initBackend();
const L = Number(process.argv[2] ?? 128), B = 32, H = 128, V = 8000;
const enc = buildGraftEncoder({ ...DEFAULT_CONFIG, maxLength: L }, { seed: 1 });
const ids = tf.randomUniform([B, L], 5, V, 'int32'); const mask = tf.ones([B, L], 'int32');
const vars = enc.trainableWeights.map(w => w.read() as tf.Variable);
const time = async (name: string, f: () => void) => { const t = Date.now(); f(); console.log(name, Date.now() - t, 'ms'); };
await time('forward', () => tf.tidy(() => { (enc.apply([ids, mask]) as tf.Tensor[])[0].dataSync(); }));
await time('forward', () => tf.tidy(() => { (enc.apply([ids, mask]) as tf.Tensor[])[0].dataSync(); }));


const E = vars.find(x => x.name.includes('token_embedding'))!;
const h = tf.randomNormal([600, H]);

const p = tf.profile(() => tf.tidy(() => { const { grads } = tf.variableGrads(() => (enc.apply([ids, mask], { training: true }) as tf.Tensor[])[0].square().mean() as tf.Scalar, vars); Object.values(grads)[0].dataSync(); }));
const byK: Record<string, number> = {};
for (const k of (await p).kernels) byK[k.name] = (byK[k.name] ?? 0) + (k.kernelTimeMs as number);
console.log(Object.entries(byK).sort((a, b) => b[1] - a[1]).slice(0, 12));
const ks = (await p).kernels;
console.log('count', ks.length);
const top = [...ks].sort((a, b) => (b.kernelTimeMs as number) - (a.kernelTimeMs as number)).slice(0, 15);
for (const k of top) console.log(k.name, (k.kernelTimeMs as number).toFixed(0), JSON.stringify(k.inputShapes), JSON.stringify(k.outputShapes));
const counts: Record<string, number> = {}; for (const k of ks) counts[k.name] = (counts[k.name] ?? 0) + 1; console.log(counts);
