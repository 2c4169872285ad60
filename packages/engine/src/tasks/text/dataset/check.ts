/**
 * The full check of an uploaded text dataset, streamed: every row is read once, checked, counted
 * and (when valid) written to the normalised rows file; what is kept per row in memory is a few
 * numbers (length, label index, fingerprint, tokens), never the text. At the end: refuse (a
 * GraftError the API answers) or report the statistics and keep the rows and fingerprint files.
 */
import {
  GraftError,
  TEXT_DATASET_LIMITS,
  type ArchiveLimits,
  type Duplicates,
  type InvalidRow,
  type TextFormat,
  type TextStats,
} from '@graft/contracts';
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { U32Column, U64Column } from './columns.ts';
import { readCsvRows } from './csv.ts';
import { sortedUnique, writeFingerprints } from './fingerprints.ts';
import { readJsonlRows } from './jsonl.ts';
import { fingerprintHex, NORMALIZATION } from './normalize.ts';
import type { RawRow, TextLimits } from './row.ts';
import { RowsWriter } from './rows-file.ts';
import { sniff, skip } from './sniff.ts';
import { openTextSource } from './source.ts';
import { balanceOf, findDuplicates, percentiles, type DuplicateGroupRows } from './stats.ts';

/** Counts tokens as a text base's tokenizer does (before truncation). */
export interface TokenCounter {
  readonly baseModel: string;
  readonly maxLength: number;
  countTokens(text: string): number;
}

export interface CheckTextDatasetOptions {
  /** The uploaded file (plain, gzipped or zipped CSV or JSONL). */
  path: string;
  /** The name the client gave it ('' if none): a hint for the format, never a decision against the content. */
  filename: string;
  /** Refuse when invalid rows / all rows is above this (0..1). */
  maxInvalidShare: number;
  /** Where the normalised rows and the fingerprints go; both removed again when the check refuses. */
  rowsPath: string;
  fingerprintsPath: string;
  tokenCounter?: TokenCounter | null;
  limits?: TextLimits;
  /** Inflation bounds of a gzipped or zipped file (default ARCHIVE_LIMITS). */
  archiveLimits?: ArchiveLimits;
}

export interface TextDatasetReport {
  format: TextFormat;
  /** Valid rows. */
  rowCount: number;
  /** Rows read, valid or not. */
  totalRows: number;
  /** Sorted by name (the output order). */
  classes: { name: string; rows: number }[];
  balance: { imbalanceRatio: number; imbalanced: boolean };
  textStats: TextStats;
  duplicates: Duplicates;
  invalidRows: InvalidRow[];
  invalidRowCount: number;
  invalidShare: number;
  maxInvalidShare: number;
  fingerprints: { distinct: number; normalization: string };
}

const EXAMPLE_CHARS = 200;

const invalid = (message: string) => new GraftError('invalid_text_dataset', message, 'file');

/** Reads the texts of the given rows (by index among the valid rows) back from the rows file. */
async function textsOfRows(rowsPath: string, wanted: Set<number>): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  if (!wanted.size) return out;
  const last = Math.max(...wanted);
  const lines = createInterface({ input: createReadStream(rowsPath), crlfDelay: Infinity });
  let i = 0;
  for await (const l of lines) {
    if (wanted.has(i)) out.set(i, (JSON.parse(l) as { text: string }).text);
    if (++i > last) break;
  }
  lines.close();
  return out;
}

export async function checkTextDataset(opts: CheckTextDatasetOptions): Promise<TextDatasetReport> {
  const limits = opts.limits ?? TEXT_DATASET_LIMITS;
  const source = await openTextSource(opts.path, opts.filename, limits, opts.archiveLimits);
  let writer: RowsWriter | null = null;
  try {
    const kind = await sniff(source.chunks, source.name);
    const body = kind.bom ? skip(source.chunks, 3) : source.chunks;
    const batches =
      kind.type === 'csv' ? readCsvRows(body, { delimiter: kind.delimiter!, limits }) : readJsonlRows(body, { limits });

    writer = new RowsWriter(opts.rowsPath);
    const chars = new U32Column();
    const tokens = new U32Column();
    const labelOf = new U32Column();
    const lineOf = new U32Column();
    const hashes = new U64Column();
    const classIndex = new Map<string, number>();
    const classNames: string[] = [];
    const classCounts: number[] = [];
    const listed: InvalidRow[] = [];
    let invalidCount = 0;
    let total = 0;
    let overMaxLength = 0;
    const counter = opts.tokenCounter ?? null;

    const take = async (row: RawRow) => {
      total++;
      if (total > limits.maxRows) {
        throw new GraftError('too_many_entries', `The file has more than ${limits.maxRows} rows (the limit); split it.`, 'file');
      }
      if (!row.ok) {
        invalidCount++;
        if (listed.length < limits.listedInvalidRows) listed.push({ line: row.line, code: row.code, reason: row.reason });
        return;
      }
      let c = classIndex.get(row.label);
      if (c === undefined) {
        if (classNames.length >= limits.maxClasses) {
          throw new GraftError('too_many_entries', `The file has more than ${limits.maxClasses} distinct labels (the limit); line ${row.line} adds "${row.label.slice(0, 40)}".`, 'file');
        }
        c = classNames.length;
        classIndex.set(row.label, c);
        classNames.push(row.label);
        classCounts.push(0);
      }
      classCounts[c]!++;
      labelOf.push(c);
      lineOf.push(row.line);
      chars.push(row.chars);
      hashes.pushHex(fingerprintHex(row.text));
      if (counter) {
        const n = counter.countTokens(row.text);
        tokens.push(n);
        if (n > counter.maxLength) overMaxLength++;
      }
      await writer!.add({ line: row.line, text: row.text, label: row.label });
    };
    for await (const batch of batches) for (const row of batch) await take(row);
    await writer.close();

    if (total === 0) throw invalid('The file has no rows, only a header.');
    const invalidShare = invalidCount / total;
    if (invalidShare > opts.maxInvalidShare) {
      const first = listed.slice(0, 5).map((r) => `line ${r.line}: ${r.reason}`).join('; ');
      const needed = Math.ceil(invalidShare * 10_000) / 10_000;
      throw new GraftError(
        'too_many_invalid_rows',
        `${invalidCount} of ${total} rows (${(invalidShare * 100).toFixed(2)}%) are invalid; maxInvalidShare is ${opts.maxInvalidShare}. ` +
          `First: ${first}${invalidCount > 5 ? '; …' : ''}. Fix them, or set maxInvalidShare to at least ${needed} to skip them.`,
        'file',
      );
    }
    const valid = labelOf.length;
    if (classNames.length < 2) {
      throw new GraftError(
        'too_few_classes',
        `Found ${classNames.length} label(s)${classNames.length ? ` (${classNames.map((n) => `"${n.slice(0, 40)}"`).join(', ')})` : ''} in ${valid} valid row(s); classification needs at least 2.`,
        'file',
      );
    }

    // Output order: labels sorted by name, as image classes are.
    const order = classNames.map((name, i) => ({ name, rows: classCounts[i]! })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const dup = findDuplicates(hashes.wordView(), labelOf.view(), limits.listedDuplicateExamples);
    const wanted = new Set([...dup.examples, ...dup.conflicts].map((g) => g.rows[0]!));
    const texts = await textsOfRows(opts.rowsPath, wanted);
    const lines = lineOf.view();
    const group = (g: DuplicateGroupRows) => ({
      text: [...(texts.get(g.rows[0]!) ?? '')].slice(0, EXAMPLE_CHARS).join(''),
      count: g.count,
      lines: g.rows.map((r) => lines[r]!),
      labels: g.labels.map((l) => classNames[l]!),
      conflicting: g.labels.length > 1,
    });
    const distinct = sortedUnique(hashes.view());
    await writeFingerprints(opts.fingerprintsPath, distinct);

    return {
      format: { type: kind.type, compression: source.compression, entry: source.entry, delimiter: kind.delimiter, bom: kind.bom },
      rowCount: valid,
      totalRows: total,
      classes: order,
      balance: balanceOf(order.map((c) => c.rows)),
      textStats: {
        characters: percentiles(chars.view()),
        tokens: counter ? { ...percentiles(tokens.view()), baseModel: counter.baseModel, maxLength: counter.maxLength, overMaxLength } : null,
      },
      duplicates: {
        rows: dup.rows,
        texts: dup.texts,
        conflictingTexts: dup.conflictingTexts,
        examples: dup.examples.map(group),
        conflicts: dup.conflicts.map(group),
      },
      invalidRows: listed,
      invalidRowCount: invalidCount,
      invalidShare,
      maxInvalidShare: opts.maxInvalidShare,
      fingerprints: { distinct: distinct.length, normalization: NORMALIZATION },
    };
  } catch (err) {
    await writer?.destroy();
    await Promise.all([rm(opts.rowsPath, { force: true }), rm(opts.fingerprintsPath, { force: true })]);
    throw err;
  } finally {
    source.close();
  }
}
