/**
 * Universal-Sentence-Encoder-style graph encoders by URL: the SentencePiece tokenizer, and the loader
 * against a local HTTP server serving a graph model the test makes (same signature as USE lite):
 * vectors equal to what the graph computes, cache reuse without network, clear errors, cancellation.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../src/backend/backend.ts';
import { TrainingError } from '../src/errors.ts';
import { sentencePieceTokenizer } from '../src/tasks/text/use/sentencepiece.ts';
import { openUseEncoder } from '../src/tasks/text/use/use-encoder.ts';
import { FIXTURE_DIM, FIXTURE_VOCAB, referenceVector, writeUseFixture } from './text-use-fixture.ts';

const id = (piece: string) => FIXTURE_VOCAB.findIndex(([p]) => p === piece);

describe('SentencePiece (USE vocab.json) tokenizer', () => {
  const tok = sentencePieceTokenizer(FIXTURE_VOCAB);
  it('picks the segmentation of highest total score', () => {
    // "▁whale" (-4) beats "▁wh" + "ale" (-10) and single letters.
    assert.deepEqual(tok.encode('the whale'), [id('▁the'), id('▁whale')]);
    assert.deepEqual(tok.encode('seas'), [id('▁sea'), id('s')]);
  });
  it('maps uncovered characters to the unknown id 0, merging runs, and normalises NFKC', () => {
    assert.deepEqual(tok.encode('the ZZZ whale'), [id('▁the'), id('▁'), 0, id('▁whale')]);
    assert.deepEqual(tok.encode('ｔｈｅ'), tok.encode('the')); // full-width letters → ASCII under NFKC
    assert.deepEqual(tok.encode(''), []);
  });
});

describe('USE-style graph encoder by URL', () => {
  let server: Server;
  let base: string;
  let work: string;
  let requests: string[] = [];
  before(async () => {
    await initBackend();
    work = await mkdtemp(join(tmpdir(), 'graft-use-test-'));
    await writeUseFixture(join(work, 'site', 'good'));
    await writeUseFixture(join(work, 'site', 'wrong'), { inputName: 'tokens' });
    server = createServer(async (req, res) => {
      requests.push(req.url!);
      const path = new URL(req.url!, 'http://x').pathname;
      try {
        const body = await readFile(join(work, 'site', path));
        res.writeHead(200, { 'content-length': body.byteLength }).end(body);
      } catch {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const addr = server.address() as { port: number };
    base = `http://127.0.0.1:${addr.port}`;
  });
  after(async () => {
    await new Promise((r) => server.close(r));
    await rm(work, { recursive: true, force: true });
  });

  const source = (dir = 'good') => ({ modelUrl: `${base}/${dir}/model.json`, vocabUrl: `${base}/${dir}/vocab.json` });

  it('embeds texts as the graph computes them, in order, whatever the batch size', async () => {
    const cacheDir = join(work, 'cache');
    requests = [];
    const enc = await openUseEncoder(source(), { cacheDir });
    assert.equal(enc.kind, 'tfjs-graph');
    assert.equal(enc.dim, FIXTURE_DIM);
    assert.ok(requests.includes('/good/model.json') && requests.includes('/good/group1-shard1of1.bin') && requests.includes('/good/vocab.json'));
    const texts = ['the whale is big', 'seas', 'a whale', '', 'the sea'];
    const vectors = await enc.embed(texts, { batchSize: 2 });
    assert.equal(vectors.length, texts.length * FIXTURE_DIM);
    texts.forEach((t, i) => {
      const ids = enc.tokenizer.encode(t);
      const expected = referenceVector(ids.length ? ids : [0]);
      const got = Array.from(vectors.subarray(i * FIXTURE_DIM, (i + 1) * FIXTURE_DIM));
      got.forEach((v, k) => assert.ok(Math.abs(v - expected[k]!) < 1e-5, `text ${i}, component ${k}: ${v} vs ${expected[k]}`));
    });
    assert.deepEqual(Array.from(await enc.embed(texts, { batchSize: 32 })), Array.from(vectors));
    assert.equal(enc.countTokens('the whale'), 2);
    enc.dispose();

    // Cached: a second open makes no request at all.
    requests = [];
    const again = await openUseEncoder(source(), { cacheDir, fetch: () => Promise.reject(new Error('network is off')) });
    assert.deepEqual(requests, []);
    assert.deepEqual(Array.from(await again.embed(texts)), Array.from(vectors));
    again.dispose();
  });

  it('says why a model cannot be used', async () => {
    const cacheDir = join(work, 'cache-errors');
    await assert.rejects(openUseEncoder(source('wrong'), { cacheDir }), (err: unknown) => err instanceof TrainingError && err.code === 'base_model_unavailable' && /no "values" input/.test(err.message));
    await assert.rejects(openUseEncoder({ ...source(), vocabUrl: `${base}/good/missing.json` }, { cacheDir }), (err: unknown) => err instanceof TrainingError && /HTTP 404/.test(err.message));
    await assert.rejects(openUseEncoder({ ...source(), modelSha256: '0'.repeat(64) }, { cacheDir: null }), (err: unknown) => err instanceof TrainingError && /sha256/.test(err.message));
    await assert.rejects(openUseEncoder({ ...source(), vocabUrl: `${base}/good/model.json` }, { cacheDir: null }), (err: unknown) => err instanceof TrainingError && /not a vocabulary/.test(err.message));
  });

  it('stops between batches when cancelled, and reports progress', async () => {
    const enc = await openUseEncoder(source(), { cacheDir: join(work, 'cache') });
    const ctl = new AbortController();
    ctl.abort();
    await assert.rejects(enc.embed(['the sea', 'a whale'], { batchSize: 1, signal: ctl.signal }), { name: 'AbortError' });
    const progress: number[] = [];
    await enc.embed(['the sea', 'a whale', 'seas'], { batchSize: 2, onProgress: (done) => progress.push(done) });
    assert.deepEqual(progress, [2, 3]);
    enc.dispose();
  });
});
