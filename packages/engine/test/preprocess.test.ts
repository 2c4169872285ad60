import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deflateSync } from 'node:zlib';
import jpeg from 'jpeg-js';
import type { Preprocessing } from '@graft/contracts';
import { initBackend } from '../src/backend/backend.ts';
import { decodeImage, preprocessImage } from '../src/tasks/image/preprocess.ts';
import { greyPng, rgbPng } from './fixtures.ts';

// A minimal PNG writer for the variants pngjs cannot write (palette, 16-bit).
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}
function rawPng(width: number, height: number, bitDepth: number, colorType: number, rows: Buffer[], extra: Buffer[] = []): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = bitDepth;
  ihdr[9] = colorType;
  const idat = deflateSync(Buffer.concat(rows.map((r) => Buffer.concat([Buffer.from([0]), r]))));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), ...extra, chunk('IDAT', idat), chunk('IEND', Buffer.alloc(0))]);
}

const GREY: Preprocessing = { height: 2, width: 2, channels: 1, resize: 'bilinear', scale: 1 / 255, offset: 0 };
const RGB: Preprocessing = { height: 2, width: 2, channels: 3, resize: 'bilinear', scale: 1, offset: -100 };

test('PNG variants decode to the same RGB: grey, RGB, RGBA (alpha dropped), 16-bit, palette', () => {
  const grey = decodeImage(greyPng(Uint8Array.from([0, 100, 200, 255]), 2, 2));
  assert.deepEqual([...grey.data], [0, 0, 0, 100, 100, 100, 200, 200, 200, 255, 255, 255]);

  const rgb = Uint8Array.from([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30]);
  assert.deepEqual([...decodeImage(rgbPng(rgb, 2, 2)).data], [...rgb]);

  const rgbaRows = [Buffer.from([255, 0, 0, 0, 0, 255, 0, 128]), Buffer.from([0, 0, 255, 255, 10, 20, 30, 7])];
  assert.deepEqual([...decodeImage(rawPng(2, 2, 8, 6, rgbaRows)).data], [...rgb]);

  // 16-bit grey: samples are big-endian; rescaled to 8 bits (0xffff → 255, 0x6464 → 100).
  const grey16 = rawPng(2, 2, 16, 0, [Buffer.from([0, 0, 0x64, 0x64]), Buffer.from([0xc8, 0xc8, 0xff, 0xff])]);
  assert.deepEqual([...decodeImage(grey16).data], [...grey.data]);

  const palette = chunk('PLTE', Buffer.from([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30]));
  const indexed = rawPng(2, 2, 8, 3, [Buffer.from([0, 1]), Buffer.from([2, 3])], [palette]);
  assert.deepEqual([...decodeImage(indexed).data], [...rgb]);
});

test('JPEG decodes (lossy: within a few levels)', () => {
  const rgba = new Uint8Array(8 * 8 * 4);
  for (let i = 0; i < 64; i++) rgba.set([200, 100, 50, 255], i * 4);
  const img = decodeImage(jpeg.encode({ data: rgba, width: 8, height: 8 }, 95).data);
  assert.equal(img.width, 8);
  assert.equal(img.data.length, 8 * 8 * 3);
  for (let i = 0; i < 64; i++) {
    assert.ok(Math.abs(img.data[i * 3]! - 200) <= 4 && Math.abs(img.data[i * 3 + 1]! - 100) <= 4 && Math.abs(img.data[i * 3 + 2]! - 50) <= 4);
  }
});

test('preprocessing: luma for 1 channel, resize, scale and offset', async () => {
  await initBackend();
  const rgb = Uint8Array.from([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30]);
  const grey = preprocessImage(rgbPng(rgb, 2, 2), GREY);
  assert.deepEqual(grey.shape, [2, 2, 1]);
  const luma = [0.299 * 255, 0.587 * 255, 0.114 * 255, 0.299 * 10 + 0.587 * 20 + 0.114 * 30].map((v) => v / 255);
  (await grey.data()).forEach((v, i) => assert.ok(Math.abs(v - luma[i]!) < 1e-6));
  const colour = preprocessImage(rgbPng(rgb, 2, 2), RGB);
  assert.deepEqual([...(await colour.data())], [...rgb].map((v) => v - 100));

  // 4x4 → 2x2 bilinear (tfjs' default corners): pixel (i, j) samples source (2i, 2j).
  const big = Uint8Array.from({ length: 16 }, (_, i) => i * 10);
  const small = preprocessImage(greyPng(big, 4, 4), { ...GREY, scale: 1 });
  assert.deepEqual([...(await small.data())], [0, 20, 80, 100]);
  tfDispose(grey, colour, small);
});

test('decompression bombs are refused before any pixel is allocated', () => {
  const bomb = rawPng(100_000, 100_000, 8, 0, [Buffer.alloc(1)]);
  assert.throws(() => decodeImage(bomb), /limit is 40000000 pixels/);
  // A JPEG whose frame header claims 60000 x 60000.
  const sof = Buffer.from([0xff, 0xd8, 0xff, 0xc0, 0x00, 0x0b, 0x08, 0xea, 0x60, 0xea, 0x60, 0x01, 0x01, 0x11, 0x00, 0xff, 0xd9]);
  assert.throws(() => decodeImage(sof), /limit is 40000000 pixels/);
  assert.throws(() => decodeImage(Buffer.from('not an image at all')), /not a JPEG or PNG/);
});

function tfDispose(...t: { dispose(): void }[]) {
  for (const x of t) x.dispose();
}
