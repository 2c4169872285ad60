/**
 * A text dataset upload, after the file is in storage: checked in full in a child process (the
 * API's event loop stays free, its memory is not the API's), then the upload, its normalised rows and its fingerprints are
 * moved into place and the row inserted. Anything refused or failed leaves nothing behind.
 */
import { GraftError, isTextBase, newId, type TextFormat } from '@graft/contracts';
import { baseLookups, datasets, type DatasetRow } from '@graft/db';
import { getBaseModel } from '@graft/engine/catalog';
import { resolveBase } from '@graft/engine/resolve-base';
import { TOKEN_COUNTING_AVAILABLE, type TextCheckPool, type TokenizerSpec } from '@graft/engine/text-dataset';
import type { ChildTaskReport } from '@graft/engine/child-tasks';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { sep } from 'node:path';
import { performance } from 'node:perf_hooks';
import { archiveLimitsOf } from '../../../config.ts';
import type { StoredTextStats } from '../../../serializers.ts';

/** graft's own text encoder: the base whose tokens a dataset is counted in when none is named (once the catalog has it). */
export const DEFAULT_TEXT_BASE = 'bm_graft_text_encoder';

/** A tokenizer to count with, and what to release once the check is done. */
interface Tokenizer {
  spec: TokenizerSpec;
  release(): void;
}

/**
 * The tokenizer to count tokens with: the named base's, else the default text base's when the
 * catalog has it, else none (`textStats.tokens` is then null). A registered base's folder is in
 * storage: pulled to local disk for the check.
 */
async function tokenizerFor(app: FastifyInstance, baseModel: string | undefined, tenantId: string): Promise<Tokenizer | null> {
  // The default only applies when tokens can be counted; a named base is checked either way (and refused if they cannot).
  const id = baseModel ?? (TOKEN_COUNTING_AVAILABLE && getBaseModel(DEFAULT_TEXT_BASE) ? DEFAULT_TEXT_BASE : undefined);
  if (!id) return null;
  const { storage } = app;
  const resolved = await resolveBase(id, baseLookups(app.db, (k) => storage.path(k), tenantId));
  if (!resolved.ok) throw new GraftError(resolved.code, resolved.message, 'baseModel');
  const { descriptor: base, source } = resolved.base;
  if (!isTextBase(base)) {
    throw new GraftError('task_mismatch', `${base.id} is a base for ${base.task}; token counts need a text base.`, 'baseModel');
  }
  if (source.kind !== 'directory') {
    throw new GraftError('base_model_unusable', `Token counts need ${base.id}'s tokenizer files in a folder; this base keeps them in a ${source.kind}.`, 'baseModel');
  }
  if (!TOKEN_COUNTING_AVAILABLE) {
    throw new GraftError('base_model_unusable', `Token counts in the tokenizer of ${base.id} are not available yet; upload without \`baseModel\`.`, 'baseModel');
  }
  const spec = { baseModel: base.id, maxLength: base.preprocessing.maxLength };
  if (!source.dir.startsWith(storage.root + sep)) return { spec: { ...spec, dir: source.dir }, release() {} }; // graft's own, in the repository
  const pulled = await storage.pull(storage.keyOf(source.dir), { directory: true });
  return { spec: { ...spec, dir: pulled.path }, release: () => pulled.release() };
}

function extensionOf(format: TextFormat): string {
  if (format.compression === 'zip') return '.zip';
  return `.${format.type}${format.compression === 'gzip' ? '.gz' : ''}`;
}

export async function storeTextDataset(
  app: FastifyInstance,
  req: {
    upload: { key: string; bytes: number; sha256: string; filename: string };
    tenantId: string;
    name: string;
    maxInvalidShare: number;
    baseModel: string | undefined;
    log: FastifyBaseLogger;
    pool: TextCheckPool;
    /** Aborted when the client goes away: the check is killed. */
    signal?: AbortSignal;
    onReport?: (r: ChildTaskReport) => void;
  },
): Promise<DatasetRow> {
  const { storage } = app;
  const { upload } = req;
  const id = newId('dataset');
  const tmpRows = storage.tempKey('.rows.jsonl');
  const tmpFingerprints = storage.tempKey('.fingerprints');
  const committed: string[] = [];
  let tokenizer: Tokenizer | null = null;
  try {
    tokenizer = await tokenizerFor(app, req.baseModel, req.tenantId);
    const started = performance.now();
    const report = await req.pool.check({
      path: storage.path(upload.key),
      filename: upload.filename,
      maxInvalidShare: req.maxInvalidShare,
      rowsPath: storage.path(tmpRows),
      fingerprintsPath: storage.path(tmpFingerprints),
      tokenizer: tokenizer?.spec ?? null,
      archiveLimits: archiveLimitsOf(app.config),
    }, { signal: req.signal, onReport: req.onReport });
    tokenizer?.release();
    tokenizer = null;
    req.log.info(
      { datasetId: id, rows: report.totalRows, invalid: report.invalidRowCount, classes: report.classes.length, ms: Math.round(performance.now() - started) },
      'text dataset checked',
    );
    const keys = { original: `datasets/${id}${extensionOf(report.format)}`, rows: `datasets/${id}.rows.jsonl`, fingerprints: `datasets/${id}.fingerprints` };
    for (const [from, to] of [[upload.key, keys.original], [tmpRows, keys.rows], [tmpFingerprints, keys.fingerprints]] as const) {
      await storage.commit(from, to);
      committed.push(to);
    }
    const stats: StoredTextStats & { totalRows: number; fingerprints: typeof report.fingerprints } = {
      format: report.format,
      rowCount: report.rowCount,
      totalRows: report.totalRows,
      textStats: report.textStats,
      duplicates: report.duplicates,
      invalidRows: report.invalidRows,
      invalidRowCount: report.invalidRowCount,
      invalidShare: report.invalidShare,
      maxInvalidShare: report.maxInvalidShare,
      fingerprints: report.fingerprints,
    };
    return await datasets.createDataset(app.db, {
      id,
      tenantId: req.tenantId,
      name: req.name,
      task: 'text-classification',
      storageKey: keys.original,
      bytes: upload.bytes,
      sha256: upload.sha256,
      imageCount: 0,
      classes: report.classes,
      skipped: [],
      stats,
      rowsKey: keys.rows,
      fingerprintsKey: keys.fingerprints,
    });
  } catch (err) {
    await Promise.all(committed.map((k) => storage.remove(k)));
    throw err;
  } finally {
    tokenizer?.release();
    await Promise.all([upload.key, tmpRows, tmpFingerprints].map((k) => storage.remove(k)));
  }
}
