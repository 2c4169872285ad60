/**
 * The text dataset check on real files (plain, gzipped, zipped), without the API: every rule,
 * every limit (made small here so the files stay small), line numbers, statistics, the normalised
 * rows file, fingerprints and leakage.
 */
import { GraftError, TEXT_DATASET_LIMITS } from '@graft/contracts';
import {
  checkLeakage,
  checkTextDataset,
  fingerprint,
  loadTextDataset,
  normalizeText,
  readFingerprints,
  TextCheckPool,
  type CheckTextDatasetOptions,
  type TextDatasetReport,
} from '@graft/engine/text-dataset';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { writeZip } from '../../../test/helpers/fixtures.ts';

const dir = mkdtempSync(join(tmpdir(), 'graft-text-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

function file(name: string, data: string | Buffer): string {
  const path = join(dir, `${n++}-${name}`);
  writeFileSync(path, data);
  return path;
}

async function check(path: string, opts: Partial<CheckTextDatasetOptions> = {}): Promise<TextDatasetReport & { rowsPath: string; fingerprintsPath: string }> {
  const base = join(dir, `out-${n++}`);
  const o: CheckTextDatasetOptions = {
    path,
    filename: path,
    maxInvalidShare: 1,
    rowsPath: `${base}.rows.jsonl`,
    fingerprintsPath: `${base}.fp`,
    ...opts,
  };
  const report = await checkTextDataset(o);
  return { ...report, rowsPath: o.rowsPath, fingerprintsPath: o.fingerprintsPath };
}

async function refused(path: string, code: string, message: RegExp, opts: Partial<CheckTextDatasetOptions> = {}) {
  const rowsPath = join(dir, `refused-${n++}.jsonl`);
  await assert.rejects(check(path, { rowsPath, ...opts }), (err: unknown) => {
    assert.ok(err instanceof GraftError, String(err));
    assert.equal(err.code, code, err.message);
    assert.match(err.message, message);
    return true;
  });
  assert.equal(existsSync(rowsPath), false, 'a refused check leaves no rows file');
}

const lines = (r: TextDatasetReport) => r.invalidRows.map((x) => [x.line, x.code]);

describe('CSV', () => {
  test('RFC 4180 quoting, embedded CRLF and doubled quotes, BOM, CRLF, columns in any order', async () => {
    const csv =
      '\uFEFFid,label,text,source\r\n' +
      '1,pos,"a ""quoted"" word, with a comma",web\r\n' +
      '2,neg,"two\r\nlines",web\r\n' +
      '\r\n' +
      '3,pos,plain,\r\n' +
      '4, neg ,"three\nlines\nhere",x\r\n' +
      '5,neg,last';
    const r = await check(file('quotes.csv', csv));
    assert.deepEqual(r.format, { type: 'csv', compression: 'none', entry: null, delimiter: ',', bom: true });
    assert.equal(r.rowCount, 5);
    assert.equal(r.invalidRowCount, 0);
    assert.deepEqual(r.classes, [{ name: 'neg', rows: 3 }, { name: 'pos', rows: 2 }]);
    const data = await loadTextDataset(r.rowsPath);
    assert.deepEqual(data.rows, [
      { line: 2, text: 'a "quoted" word, with a comma', label: 'pos' },
      { line: 3, text: 'two\r\nlines', label: 'neg' },
      { line: 6, text: 'plain', label: 'pos' },
      { line: 7, text: 'three\nlines\nhere', label: 'neg' },
      { line: 10, text: 'last', label: 'neg' },
    ]);
    assert.deepEqual(data.classes, ['neg', 'pos']);
    assert.deepEqual([...data.labels], [1, 0, 1, 0, 0]);
  });

  test('finds the delimiter from the header: tab and semicolon', async () => {
    const tsv = await check(file('data.tsv', 'text\tlabel\nhello, world\tpos\nbye\tneg\n'));
    assert.equal(tsv.format.delimiter, '\t');
    assert.equal(tsv.rowCount, 2);
    const semi = await check(file('data.csv', 'label;text\npos;"a; b"\nneg;c\n'));
    assert.equal(semi.format.delimiter, ';');
    assert.deepEqual((await loadTextDataset(semi.rowsPath)).rows.map((x) => x.text), ['a; b', 'c']);
  });

  test('every bad row is listed with the line it starts on and why', async () => {
    const long = 'x'.repeat(31);
    const csv = Buffer.concat([
      Buffer.from('text,label\n'), // 1
      Buffer.from('good one,pos\n'), // 2
      Buffer.from(',neg\n'), // 3 empty text
      Buffer.from('"   ",neg\n'), // 4 blank text
      Buffer.from('no label,\n'), // 5
      Buffer.from('no label column\n'), // 6
      Buffer.from(`${long},pos\n`), // 7 text over the limit
      Buffer.from(`fine,${'l'.repeat(11)}\n`), // 8 label over the limit
      Buffer.from('bad '), Buffer.from([0xc3, 0x28]), Buffer.from(' utf8,neg\n'), // 9
      Buffer.from('"multi\nline ok",neg\n'), // 10-11
      Buffer.from('one,two,three\n'), // 12 too many fields
      Buffer.from('good two,neg\n'), // 13
      Buffer.from('"never closed,pos\nrest,neg\n'), // 14-15
    ]);
    const r = await check(file('bad.csv', csv), { limits: { ...TEXT_DATASET_LIMITS, maxTextLength: 30, maxLabelLength: 10 } });
    assert.deepEqual(lines(r), [
      [3, 'empty_text'],
      [4, 'empty_text'],
      [5, 'missing_label'],
      [6, 'missing_label'],
      [7, 'text_too_long'],
      [8, 'label_too_long'],
      [9, 'invalid_utf8'],
      [12, 'malformed_record'],
      [14, 'malformed_record'],
    ]);
    assert.match(r.invalidRows[4]!.reason, /31 characters; the limit is 30/);
    assert.match(r.invalidRows[5]!.reason, /11 characters; the limit is 10/);
    assert.match(r.invalidRows[7]!.reason, /3 fields; the header has 2/);
    assert.match(r.invalidRows[8]!.reason, /never closed \(lines 14–15/);
    assert.equal(r.rowCount, 3);
    assert.equal(r.invalidRowCount, 9);
    assert.equal(r.invalidShare, 9 / 12);
    assert.deepEqual((await loadTextDataset(r.rowsPath)).rows.map((x) => x.line), [2, 10, 13]);
  });

  test('refuses a header without text and label, and a record past the size limit', async () => {
    await refused(file('h.csv', 'sentence,class\na,b\n'), 'invalid_text_dataset', /"text" and a "label" column.*"sentence,class"/);
    await refused(file('h.jsonl', 'sentence,class\na,b\n'), 'invalid_text_dataset', /file name says JSON Lines/);
    await refused(file('dup.csv', 'text,label,text\na,b,c\n'), 'invalid_text_dataset', /2 columns named "text"/);
    const open = `text,label\nok,pos\n"${'y'.repeat(3000)}`;
    await refused(file('open.csv', open), 'invalid_text_dataset', /starting on line 3 is longer than 2048 bytes/, {
      limits: { ...TEXT_DATASET_LIMITS, maxRecordBytes: 2048 },
    });
  });
});

describe('JSONL', () => {
  test('objects per line; bad lines listed with their line', async () => {
    const jsonl = [
      '{"text": "first", "label": "a", "extra": 1}', // 1
      '', // 2 blank: skipped, not invalid
      '{"text": "second", "label": 2}', // 3 numeric label
      '{"text": "third" "label": "a"}', // 4 malformed
      '["text", "label"]', // 5
      '{"label": "a"}', // 6
      '{"text": 7, "label": "a"}', // 7
      '{"text": "x", "label": null}', // 8
      '{"text": "\\u00e9t\\u00e9", "label": "b"}\r', // 9
    ].join('\n');
    const r = await check(file('d.jsonl', jsonl));
    assert.deepEqual(r.format, { type: 'jsonl', compression: 'none', entry: null, delimiter: null, bom: false });
    assert.deepEqual(lines(r), [[4, 'malformed_json'], [5, 'malformed_json'], [6, 'missing_text'], [7, 'missing_text'], [8, 'missing_label']]);
    assert.match(r.invalidRows[2]!.reason, /no text/);
    assert.match(r.invalidRows[3]!.reason, /"text" is a number/);
    const rows = (await loadTextDataset(r.rowsPath)).rows;
    assert.deepEqual(rows, [
      { line: 1, text: 'first', label: 'a' },
      { line: 3, text: 'second', label: '2' },
      { line: 9, text: 'été', label: 'b' },
    ]);
  });

  test('a line over the size limit is listed and skipped without stopping the file', async () => {
    const jsonl = `{"text":"a","label":"x"}\n{"text":"${'z'.repeat(5000)}","label":"y"}\n{"text":"b","label":"y"}\n`;
    const r = await check(file('long.jsonl', jsonl), { limits: { ...TEXT_DATASET_LIMITS, maxRecordBytes: 1000 } });
    assert.deepEqual(lines(r), [[2, 'malformed_json']]);
    assert.match(r.invalidRows[0]!.reason, /longer than 1000 bytes/);
    assert.equal(r.rowCount, 2);
  });

  test('a JSON array, an empty file, an image and binary data are refused', async () => {
    await refused(file('arr.json', '[{"text":"a","label":"b"}]'), 'invalid_text_dataset', /JSON array/);
    await refused(file('empty.csv', ' \n\n'), 'invalid_text_dataset', /empty/);
    await refused(file('header-only.csv', 'text,label\n'), 'invalid_text_dataset', /no rows/);
    await refused(file('img.png', Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0])), 'invalid_text_dataset', /image.*task=image-classification/);
    await refused(file('bin.csv', Buffer.from([0x74, 0, 0x65, 0x78])), 'invalid_text_dataset', /binary/);
  });
});

describe('containers', () => {
  const csv = 'text,label\nhello,pos\nworld,neg\n';
  test('gzip, zip with one file, zip with one gzipped file', async () => {
    const gz = await check(file('d.csv.gz', gzipSync(csv)));
    assert.deepEqual([gz.format.type, gz.format.compression, gz.rowCount], ['csv', 'gzip', 2]);
    const zipPath = join(dir, 'one.zip');
    await writeZip(zipPath, [{ name: 'data/train.jsonl', data: '{"text":"a","label":"x"}\n{"text":"b","label":"y"}\n' }, { name: '__MACOSX/data/._train.jsonl', data: 'x' }]);
    const z = await check(zipPath);
    assert.deepEqual([z.format.type, z.format.compression, z.format.entry, z.rowCount], ['jsonl', 'zip', 'data/train.jsonl', 2]);
    const zgzPath = join(dir, 'gz.zip');
    await writeZip(zgzPath, [{ name: 'train.csv.gz', data: gzipSync(csv) }]);
    const zgz = await check(zgzPath);
    assert.deepEqual([zgz.format.type, zgz.format.compression, zgz.format.entry, zgz.rowCount], ['csv', 'zip', 'train.csv.gz', 2]);
  });

  test('a zip of two files, a zip of images, damaged gzip and a decompression bomb are refused', async () => {
    const two = join(dir, 'two.zip');
    await writeZip(two, [{ name: 'a.csv', data: csv }, { name: 'b.csv', data: csv }]);
    await refused(two, 'invalid_text_dataset', /exactly one file.*holds 2\./);
    const images = join(dir, 'images.zip');
    await writeZip(images, [{ name: 'cat/1.png', data: 'x' }, { name: 'dog/1.png', data: 'y' }]);
    await refused(images, 'invalid_text_dataset', /holds 2\. It holds 2 image\(s\).*task=image-classification/);
    const gz = gzipSync(csv);
    await refused(file('cut.csv.gz', gz.subarray(0, gz.length - 12)), 'invalid_text_dataset', /gzip data is damaged/);
    await refused(file('bomb.csv.gz', gzipSync(`text,label\n${'a,b\n'.repeat(10_000)}`)), 'payload_too_large', /larger than 1000 bytes once decompressed/, {
      limits: { ...TEXT_DATASET_LIMITS, maxDecompressedBytes: 1000 },
    });
  });
});

describe('limits and refusals', () => {
  test('more invalid rows than allowed: the count, the share and the first reasons', async () => {
    const path = file('share.csv', 'text,label\na,x\n,x\nb,y\nc,\n');
    await refused(path, 'too_many_invalid_rows', /^2 of 4 rows \(50\.00%\) are invalid; maxInvalidShare is 0\.4\. First: line 3: the text is empty or blank; line 5: no label\. .*at least 0\.5/, {
      maxInvalidShare: 0.4,
    });
    const ok = await check(path, { maxInvalidShare: 0.5 });
    assert.equal(ok.rowCount, 2);
    assert.equal(ok.invalidShare, 0.5);
  });

  test('rows, classes and too few classes', async () => {
    const limits = { ...TEXT_DATASET_LIMITS, maxRows: 3, maxClasses: 2 };
    await refused(file('rows.csv', 'text,label\na,x\nb,y\nc,x\nd,y\n'), 'too_many_entries', /more than 3 rows/, { limits });
    await refused(file('classes.csv', 'text,label\na,x\nb,y\nc,z\n'), 'too_many_entries', /more than 2 distinct labels.*line 4 adds "z"/, { limits });
    await refused(file('one.csv', 'text,label\na,x\nb,x\n'), 'too_few_classes', /1 label\(s\) \("x"\).*at least 2/);
    // Refused part-way through a gzipped file and a zipped one: the readers stop and close.
    const many = `text,label\n${'a,x\nb,y\n'.repeat(50_000)}`;
    await refused(file('rows.csv.gz', gzipSync(many)), 'too_many_entries', /more than 3 rows/, { limits });
    const zipped = join(dir, 'rows.zip');
    await writeZip(zipped, [{ name: 'rows.csv', data: many }]);
    await refused(zipped, 'too_many_entries', /more than 3 rows/, { limits });
  });
});

describe('statistics', () => {
  test('length percentiles in characters (code points), balance', async () => {
    // Texts of 1..100 characters; the 100-character one ends in an emoji (one character, two UTF-16 units).
    const rows = Array.from({ length: 100 }, (_, i) => `${i === 99 ? `${'é'.repeat(99)}😀` : 'a'.repeat(i + 1)},${i < 80 ? 'big' : 'small'}`);
    const r = await check(file('len.csv', `text,label\n${rows.join('\n')}\n`));
    assert.deepEqual(r.textStats.characters, { p5: 5, p50: 50, p95: 95, max: 100, mean: 50.5 });
    assert.equal(r.textStats.tokens, null);
    assert.deepEqual(r.balance, { imbalanceRatio: 4, imbalanced: true });
  });

  test('duplicates after normalisation, with conflicting labels flagged', async () => {
    const csv = 'text,label\nGreat movie!,pos\nawful,neg\n" great   MOVIE! ",pos\nfine,neu\nawful,pos\ngreat movie!,pos\nunique,neg\n';
    const r = await check(file('dups.csv', csv));
    assert.equal(normalizeText(' great   MOVIE! '), 'great movie!');
    assert.deepEqual(r.duplicates, {
      rows: 3,
      texts: 2,
      conflictingTexts: 1,
      examples: [
        { text: 'Great movie!', count: 3, lines: [2, 4, 7], labels: ['pos'], conflicting: false },
        { text: 'awful', count: 2, lines: [3, 6], labels: ['neg', 'pos'], conflicting: true },
      ],
      conflicts: [{ text: 'awful', count: 2, lines: [3, 6], labels: ['neg', 'pos'], conflicting: true }],
    });
    const fp = await readFingerprints(r.fingerprintsPath);
    assert.equal(fp.length, 4);
    assert.equal(r.fingerprints.distinct, 4);
    assert.ok([...fp].every((v, i) => i === 0 || fp[i - 1]! < v), 'sorted, distinct');
    assert.ok(fp.includes(fingerprint('GREAT movie!')));
    assert.equal(readFileSync(r.fingerprintsPath).subarray(0, 8).toString(), 'GRAFTFP1');
  });
});

describe('leakage', () => {
  test('counts the texts a test set shares with a training set, and names its lines', async () => {
    const train = await check(file('train.csv', 'text,label\nthe cat sat,a\nthe dog ran,b\nbirds fly,a\nfish swim,b\n'));
    const test = await check(file('test.jsonl', '{"text":"The  cat sat","label":"a"}\n{"text":"new text","label":"b"}\n{"text":"fish swim","label":"b"}\n{"text":"fish swim","label":"b"}\n'));
    const counts = await checkLeakage({ trainFingerprintsPath: train.fingerprintsPath, testFingerprintsPath: test.fingerprintsPath });
    assert.deepEqual(counts, { sharedTexts: 2, trainTexts: 4, testTexts: 3, testShare: 2 / 3, testRows: null, examples: [] });
    const named = await checkLeakage({ trainFingerprintsPath: train.fingerprintsPath, testFingerprintsPath: test.fingerprintsPath, testRowsPath: test.rowsPath });
    assert.equal(named.testRows, 3);
    assert.deepEqual(named.examples, [{ line: 1, text: 'The  cat sat' }, { line: 3, text: 'fish swim' }, { line: 4, text: 'fish swim' }]);
    const clean = await check(file('clean.csv', 'text,label\nx,a\ny,b\n'));
    assert.equal((await checkLeakage({ trainFingerprintsPath: train.fingerprintsPath, testFingerprintsPath: clean.fingerprintsPath })).sharedTexts, 0);
  });
});

describe('TextCheckPool', () => {
  test('checks in child processes, more at once than children, errors with their code; idle children end', async () => {
    const pool = new TextCheckPool({ maxChildren: 2, idleMs: 200 });
    try {
      const good = file('pool.csv', 'text,label\na,x\nb,y\n');
      const bad = file('pool-bad.csv', 'text,label\na,x\n,y\n');
      const req = (path: string, i: number) => ({ path, filename: 'd.csv', maxInvalidShare: 0, rowsPath: join(dir, `pool-${i}.jsonl`), fingerprintsPath: join(dir, `pool-${i}.fp`), tokenizer: null });
      const results = await Promise.allSettled([good, good, bad, good].map((p, i) => pool.check(req(p, i))));
      assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
      for (const i of [0, 1, 3]) assert.equal((results[i] as PromiseFulfilledResult<TextDatasetReport>).value.rowCount, 2);
      const err = (results[2] as PromiseRejectedResult).reason;
      assert.ok(err instanceof GraftError);
      assert.equal(err.code, 'too_many_invalid_rows');
      assert.equal(err.param, 'file');
      assert.ok(pool.children >= 1 && pool.children <= 2, `children: ${pool.children}`);
      for (let i = 0; i < 100 && pool.children > 0; i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(pool.children, 0, 'idle children end');
    } finally {
      await pool.close();
    }
  });
});
