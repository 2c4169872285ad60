/** User bases: inspectUserBase (layers and graph), unpackModelZip's defences, and the inspect-base CLI. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import yazl from 'yazl';
import { initBackend } from '../src/backend/backend.ts';
import { MOBILENET_V2_MID_FEATURE_NODE } from '../src/bases/catalog.ts';
import { TrainingError } from '../src/errors.ts';
import { directorySaver } from '../src/bases/model-io.ts';
import { inspectUserBase, unpackModelZip } from '../src/bases/inspect-base.ts';
import { writeZip } from '../src/util/zip.ts';
import { saveModelDir, tinyCnn, TINY_PRE, writeNsfwjsModelDir } from './bases-fixtures.ts';

const CLI = fileURLToPath(new URL('../src/cli/inspect-base.ts', import.meta.url));
const MID_PRE = { height: 224, width: 224, channels: 3 as const, resize: 'bilinear' as const, scale: 1 / 255, offset: 0 };

let root: string;
let tiny: string;
let mid: string;
before(async () => {
  await initBackend();
  root = await mkdtemp(join(tmpdir(), 'graft-validate-'));
  tiny = join(root, 'tiny');
  const model = tinyCnn();
  await saveModelDir(model, tiny, { shards: 2 });
  model.dispose();
  mid = join(root, 'mid');
  await writeNsfwjsModelDir('mobilenet_v2_mid', mid);
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

const invalid = (pattern: RegExp) => (err: unknown) => {
  assert.ok(err instanceof TrainingError, `expected a TrainingError, got ${String(err)}`);
  assert.equal(err.code, 'invalid_base_model', err.message);
  assert.match(err.message, pattern);
  return true;
};

test('a layers base: measured input, feature shape (rank 3 or 1), layers, params and bytes', async () => {
  const r = await inspectUserBase({ dir: tiny }, { featureLayer: 'feat', preprocessing: TINY_PRE });
  // conv1 3·3·3·4+4, dw 3·3·4+4, feat 4·8+8, logits 8·3+3
  assert.deepEqual(r, { format: 'tfjs-layers', inputShape: [16, 16, 3], featureLayer: 'feat', featureShape: [8, 8, 8], layers: 6, params: 112 + 40 + 40 + 27, bytes: r.bytes });
  const files = await readdir(tiny);
  let bytes = 0;
  for (const f of files) bytes += (await readFile(join(tiny, f))).length;
  assert.equal(r.bytes, bytes);
  assert.deepEqual((await inspectUserBase({ dir: tiny }, { featureLayer: 'pool', preprocessing: TINY_PRE, format: 'tfjs-layers' })).featureShape, [8]);
});

test('a layers base: each wrong claim or broken file gets a precise invalid_base_model', async () => {
  await assert.rejects(inspectUserBase({ dir: tiny }, { featureLayer: 'feat', preprocessing: { ...TINY_PRE, height: 32 } }), invalid(/input is \[16, 16, 3\] \(height, width, channels\) but preprocessing says 32x16x3/));
  await assert.rejects(inspectUserBase({ dir: tiny }, { featureLayer: 'feat', preprocessing: { ...TINY_PRE, channels: 1 } }), invalid(/but preprocessing says 16x16x1/));
  await assert.rejects(inspectUserBase({ dir: tiny }, { featureLayer: 'nope', preprocessing: TINY_PRE }), invalid(/no layer "nope" \(6 layers; the last ones are "image", "conv1", "dw", "feat", "pool", "logits"\)/));
  await assert.rejects(inspectUserBase({ dir: tiny }, { featureLayer: 'feat', preprocessing: TINY_PRE, format: 'tfjs-graph' }), invalid(/model.json is a tfjs-layers model, not tfjs-graph as claimed/));
  await assert.rejects(inspectUserBase({ dir: join(root, 'none') }, { featureLayer: 'feat', preprocessing: TINY_PRE }), invalid(/There is no model.json/));

  // Rank-2 features cannot feed the head.
  const seq = tf.sequential({ layers: [tf.layers.reshape({ targetShape: [256, 3], inputShape: [16, 16, 3], name: 'rows' }), tf.layers.dense({ units: 2, name: 'd' })] });
  const seqDir = join(root, 'seq');
  await seq.save(directorySaver(seqDir));
  seq.dispose();
  await assert.rejects(inspectUserBase({ dir: seqDir }, { featureLayer: 'rows', preprocessing: TINY_PRE }), invalid(/Layer "rows" gives features of shape \[256, 3\] per image; the head needs rank 1 \(\[n\]\) or rank 3/));

  // A missing shard, then a truncated one.
  const broken = join(root, 'broken');
  await mkdir(broken);
  const modelJson = await readFile(join(tiny, 'model.json'));
  await writeFile(join(broken, 'model.json'), modelJson);
  await writeFile(join(broken, 'group1-shard1of2.bin'), await readFile(join(tiny, 'group1-shard1of2.bin')));
  await assert.rejects(inspectUserBase({ dir: broken }, { featureLayer: 'feat', preprocessing: TINY_PRE }), invalid(/names the weight file "group1-shard2of2.bin", which is missing/));
  await writeFile(join(broken, 'group1-shard2of2.bin'), Buffer.alloc(3));
  await assert.rejects(inspectUserBase({ dir: broken }, { featureLayer: 'feat', preprocessing: TINY_PRE }), invalid(/The layers model does not load: /));
  await writeFile(join(broken, 'model.json'), '{"format": "layers-model", ');
  await assert.rejects(inspectUserBase({ dir: broken }, { featureLayer: 'feat', preprocessing: TINY_PRE }), invalid(/model.json is not valid JSON/));
});

test('a graph base (nsfwjs\' mobilenet_v2_mid as files): node checked, one forward pass, weights counted', async () => {
  const r = await inspectUserBase({ dir: mid }, { featureLayer: MOBILENET_V2_MID_FEATURE_NODE, preprocessing: MID_PRE });
  assert.equal(r.format, 'tfjs-graph');
  assert.deepEqual(r.inputShape, [224, 224, 3]);
  assert.deepEqual(r.featureShape, [1792]);
  assert.ok(r.params > 4_000_000 && r.params < 4_500_000, `params ${r.params}`); // MobileNetV2 1.4 + nsfwjs' 5-class head
  assert.ok(r.layers > 60, `nodes ${r.layers}`);
  const spatial = await inspectUserBase({ dir: mid }, { featureLayer: `${MOBILENET_V2_MID_FEATURE_NODE.replace('feature_vector/SpatialSqueeze', 'MobilenetV2/Conv_1/Relu6')}:0`, preprocessing: MID_PRE });
  assert.deepEqual(spatial.featureShape, [7, 7, 1792]);
  await assert.rejects(inspectUserBase({ dir: mid }, { featureLayer: 'nope', preprocessing: MID_PRE }), invalid(/Graph node "nope" is not a node of this graph model\. Candidates: .*SpatialSqueeze/));
  await assert.rejects(inspectUserBase({ dir: mid }, { featureLayer: MOBILENET_V2_MID_FEATURE_NODE, preprocessing: { ...MID_PRE, width: 160 } }), invalid(/input is \[224, 224, 3\] .* preprocessing says 224x160x3/));
  await assert.rejects(inspectUserBase({ dir: mid }, { featureLayer: MOBILENET_V2_MID_FEATURE_NODE, preprocessing: MID_PRE, format: 'tfjs-layers' }), invalid(/is a tfjs-graph model, not tfjs-layers/));
});

/** A zip with entries named freely: yazl refuses unsafe names, so write a same-length placeholder and patch the bytes. */
async function craftZip(path: string, entries: { name: string; data?: Buffer; mode?: number }[]): Promise<void> {
  const zip = new yazl.ZipFile();
  const patches: [string, string][] = [];
  entries.forEach((e, i) => {
    const safe = e.name.replace(/\.\./g, () => `q${i}`.padEnd(2, 'q').slice(0, 2)).replace(/^\//, 'Z');
    if (safe !== e.name) patches.push([safe, e.name]);
    zip.addBuffer(e.data ?? Buffer.from('x'), safe, { mode: e.mode ?? 0o100644, mtime: new Date(2020, 0, 1) });
  });
  zip.end();
  const chunks: Buffer[] = [];
  for await (const c of zip.outputStream) chunks.push(c as Buffer);
  let bytes = Buffer.concat(chunks);
  for (const [from, to] of patches) {
    let at = bytes.indexOf(from);
    while (at >= 0) {
      bytes.write(to, at, 'latin1');
      at = bytes.indexOf(from, at + 1);
    }
  }
  bytes = Buffer.from(bytes);
  await writeFile(path, bytes);
}

test('unpackModelZip: unpacks a model zip (or one wrapped in a folder) and refuses unsafe or oversized ones', async () => {
  const files = await Promise.all((await readdir(tiny)).map(async (name) => ({ name, data: await readFile(join(tiny, name)) })));
  const flat = join(root, 'flat.zip');
  await writeZip(flat, files);
  const out1 = await unpackModelZip(flat, join(root, 'u1'));
  assert.equal(out1.modelDir, join(root, 'u1'));
  assert.deepEqual(out1.files.sort(), files.map((f) => f.name).sort());
  assert.equal(out1.bytes, files.reduce((s, f) => s + f.data.length, 0));
  assert.equal((await inspectUserBase({ dir: out1.modelDir }, { featureLayer: 'feat', preprocessing: TINY_PRE })).featureLayer, 'feat');

  const wrapped = join(root, 'wrapped.zip');
  await writeZip(wrapped, [...files.map((f) => ({ name: `my-model/${f.name}`, data: f.data })), { name: '__MACOSX/my-model/._model.json', data: Buffer.from('junk') }]);
  const out2 = await unpackModelZip(wrapped, join(root, 'u2'));
  assert.equal(out2.modelDir, join(root, 'u2')); // the wrapping folder is stripped
  assert.deepEqual(out2.files.sort(), files.map((f) => f.name).sort());

  const cases: [string, { name: string; data?: Buffer; mode?: number }[], RegExp, object?][] = [
    ['dotdot', [{ name: 'model.json' }, { name: '../evil.bin' }], /name escapes it \(invalid relative path: \.\.\/evil\.bin\)/],
    ['absolute', [{ name: 'model.json' }, { name: '/tmp/evil.bin' }], /name escapes it \(absolute path: \/tmp\/evil\.bin\)/],
    ['nested-dotdot', [{ name: 'a/../../evil.bin' }], /name escapes it \(invalid relative path: a\/\.\.\/\.\.\/evil\.bin\)/],
    ['symlink', [{ name: 'model.json' }, { name: 'link.bin', mode: 0o120777 }], /symbolic link "link.bin"/],
    ['duplicate', [{ name: 'model.json' }, { name: 'model.json' }], /holds "model.json" twice/],
    ['no-model', [{ name: 'weights.bin' }], /no model.json at its root/],
    ['two-folders', [{ name: 'a/model.json' }, { name: 'b/weights.bin' }], /no model.json at its root/],
    ['too-many', Array.from({ length: 6 }, (_, i) => ({ name: `f${i}.bin` })), /has 6 entries; the limit is 5/, { maxEntries: 5 }],
    ['too-big', [{ name: 'model.json', data: Buffer.alloc(5000) }], /inflates to more than 4096 bytes/, { maxTotalBytes: 4096 }],
  ];
  for (const [name, entries, pattern, limits] of cases) {
    const zip = join(root, `${name}.zip`);
    await craftZip(zip, entries);
    await assert.rejects(unpackModelZip(zip, join(root, `out-${name}`), limits), invalid(pattern), name);
  }
  await assert.rejects(readdir(join(root, 'evil.bin')), /ENOENT/);
  // The archive guard reads the central directory (names, counts, declared sizes) before anything is written.
  assert.deepEqual(await readdir(root).then((n) => n.filter((x) => x.startsWith('out-'))), []);
  await writeFile(join(root, 'not.zip'), 'hello');
  await assert.rejects(unpackModelZip(join(root, 'not.zip'), join(root, 'out-not')), invalid(/not a readable zip file/));
});

test('the inspect-base CLI answers one JSON line: result (exit 0) or error (exit 1), request from argv or stdin', async () => {
  const run = (args: string[], input?: string) => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', CLI, ...args], { input, encoding: 'utf8', timeout: 60_000 });
    return { status: r.status, answer: JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, unknown> };
  };
  const ok = run([JSON.stringify({ dir: tiny, featureLayer: 'feat', preprocessing: TINY_PRE })]);
  assert.equal(ok.status, 0);
  assert.deepEqual((ok.answer.result as { featureShape: number[] }).featureShape, [8, 8, 8]);

  const zip = join(root, 'cli.zip');
  await writeZip(zip, await Promise.all((await readdir(tiny)).map(async (name) => ({ name, data: await readFile(join(tiny, name)) }))));
  const fromZip = run([], JSON.stringify({ zip, featureLayer: 'nope', preprocessing: TINY_PRE }));
  assert.equal(fromZip.status, 1);
  assert.equal((fromZip.answer.error as { code: string }).code, 'invalid_base_model');
  assert.match((fromZip.answer.error as { message: string }).message, /no layer "nope"/);

  const bad = run(['not json']);
  assert.equal(bad.status, 1);
  assert.equal((bad.answer.error as { code: string }).code, 'invalid_request');
});
