import { GraftError, ID_PREFIX, newId, type FineTuneSpec, type FineTuneStatus, type Resources } from '@graft/contracts';
import type pg from 'pg';
import { sharedReader } from './batched-reads.ts';
import { poolOf, type Db } from './client.ts';
import { Prisma, type FineTune as FineTuneRow } from './generated/prisma/client.ts';
import { ACTIVE_STATUSES, page, scoped, type DeleteOutcome, type TenantScope } from './datasets.ts';
import { DEFAULT_TENANT } from './tenants.ts';
import { insertEvent, type NewEvent } from './events.ts';

/** How long a client refused for its concurrent-jobs quota is told to wait (a job's end cannot be predicted; this is a polling pace). */
export const ACTIVE_JOBS_RETRY_AFTER_S = 30;

export interface NewFineTune {
  /** The owner (default: the `default` tenant): its datasets and registered bases only. */
  tenantId?: string;
  spec: FineTuneSpec;
  /** What the job needs from a worker (where it runs; not part of the spec it trains with). */
  resources?: Resources;
  idempotencyKey?: string | undefined;
  requestHash: string;
  /** Events to record right after "Job queued" (e.g. warnings found while validating the request). */
  events?: Omit<NewEvent, 'fineTuneId'>[];
  /** The job's own webhook (`events` undefined: every type). */
  webhook?: { url: string; events?: readonly string[] | undefined; secret: string } | undefined;
  /** The tenant's quota of jobs queued or running at once (0 or undefined: none); past it, 429 `quota_exceeded`. */
  maxActiveJobs?: number;
}

const json = (v: unknown) => v as Prisma.InputJsonValue;

/**
 * Inserts a queued job and its first events, atomically. The datasets and the registered base (or
 * fine-tune) it uses are locked FOR SHARE first, so a concurrent DELETE of one of them either waits
 * and then sees this job, or has already left a tombstone and the job is refused.
 *
 * The common case (no webhook on the job, no extra events, no endpoint that wants
 * `fine_tune.queued`) is one statement, one round trip: an interactive transaction costs eight
 * (BEGIN, three locks, two inserts, the webhook look-ups, COMMIT) while holding a pooled connection,
 * which capped POST /v1/fine-tunes near 70 jobs/s. Anything else, including an endpoint created
 * meanwhile (the statement checks in its own snapshot), goes through the transaction below.
 */
export async function createFineTune(db: Db, f: NewFineTune): Promise<FineTuneRow> {
  return (await createQueuedFineTune(db, f)).row;
}

/**
 * `createFineTune`, also saying whether webhook deliveries may have been recorded with it (only then
 * does the dispatcher need a nudge: nobody watches the feed of a job that did not exist).
 */
export async function createQueuedFineTune(db: Db, f: NewFineTune): Promise<{ row: FineTuneRow; mayHaveDeliveries: boolean }> {
  try {
    return await createQueuedOnce(db, f, false);
  } catch (err) {
    // The tenant came near its limit while this create looked: it wrote nothing; once more, exactly.
    if (!isQuotaRecheck(err)) throw err;
    return createQueuedOnce(db, f, true);
  }
}

async function createQueuedOnce(db: Db, f: NewFineTune, exact: boolean): Promise<{ row: FineTuneRow; mayHaveDeliveries: boolean }> {
  if (!f.webhook && !f.events?.length) {
    const row = await createPlainFineTune(db, f, exact);
    if (row) return { row, mayHaveDeliveries: false };
  }
  return { row: await createFineTuneInTransaction(db, f, exact), mayHaveDeliveries: true };
}

/** A Postgres SQLSTATE, raised through node-postgres (the prepared statements) or Prisma (a raw query's P2010). */
function sqlState(err: unknown): string | undefined {
  const e = err as { code?: string; meta?: { driverAdapterError?: { cause?: { originalCode?: string } } } } | null;
  return e?.code === 'P2010' ? e.meta?.driverAdapterError?.cause?.originalCode : e?.code;
}

/** A unique index refused the write: Prisma's own P2002, or a raw statement's 23505 (the single-statement insert). */
export function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string } | null)?.code === 'P2002' || sqlState(err) === '23505';
}

/**
 * The tenant's count of jobs queued or running that the quota decides on, with the stripes of its
 * counter it read locked until the transaction ends (`graft_active_jobs_claim`, migration
 * `active_jobs_stripes`, which argues both paths). Far from the limit it locks one stripe, so
 * creates on other connections go on in parallel, and passes only with room for every create that
 * could be in flight unseen; near it (or `exact`) it locks them all, so creates at the limit queue
 * and the second reads the first's count. The insert's trigger adds the job to a stripe it holds.
 * A max of 0: no check. May fail with `QUOTA_RECHECK` (see `isQuotaRecheck`).
 */
const claimActiveJobs = (tenantId: string, max: number, exact: boolean) =>
  Prisma.sql`graft_active_jobs_claim(${tenantId}::text, ${max}::int, ${exact}::boolean)`;

/**
 * SQLSTATE of a fast-path check that found the tenant near its limit once its stripe was locked:
 * it raises rather than lock more stripes (a deadlock risk), which ends the create's statement or
 * transaction with nothing written; the create is retried with the exact check.
 */
const QUOTA_RECHECK = 'GQ001';

function isQuotaRecheck(err: unknown): boolean {
  return sqlState(err) === QUOTA_RECHECK;
}

const activeJobsQuota = (active: number, max: number) =>
  new GraftError('quota_exceeded', `This tenant has ${active} jobs queued or running, its limit is ${max}: wait for one to end (or cancel one) and retry.`, undefined, {
    retryAfterSeconds: ACTIVE_JOBS_RETRY_AFTER_S,
  });

interface InsertedRow {
  active: number;
  datasets: string[];
  base_deleted: boolean | null;
  ft_base: boolean;
  webhooks_wanted: boolean;
  row: Record<string, unknown> | null;
}

/**
 * The single-statement create. Data-modifying CTEs run once, in one snapshot; their foreign keys
 * are checked at the statement's end. $1 dataset ids, $2 tenant, $3 base, $4 base is a fine-tune,
 * $5 max active jobs (0: none), $6 exact quota check, $7 job id, $8 dataset, $9 test dataset,
 * $10 spec, $11 resources, $12 Idempotency-Key, $13 request hash, $14 epochs, $15–$18 the queued event.
 */
const CREATE_FINE_TUNE = `
    WITH ds AS (
      SELECT id FROM datasets WHERE id = ANY($1::text[]) AND tenant_id = $2::text AND deleted_at IS NULL FOR SHARE
    ), bm AS (
      SELECT deleted_at IS NOT NULL OR tenant_id <> $2::text AS deleted FROM base_models WHERE id = $3::text FOR SHARE
    ), fb AS (
      SELECT id FROM fine_tunes WHERE id = $3::text AND tenant_id = $2::text AND $4::boolean FOR SHARE
    ), ok AS (
      SELECT
        (SELECT coalesce(array_agg(id), '{}') FROM ds) AS datasets,
        (SELECT bool_or(deleted) FROM bm) AS base_deleted,
        EXISTS (SELECT 1 FROM fb) AS ft_base,
        EXISTS (SELECT 1 FROM webhook_endpoints WHERE jsonb_typeof(events) <> 'array' OR jsonb_exists(events, 'fine_tune.queued')) AS webhooks_wanted,
        -- Last, after the rows it references are locked (see the migration tenant_usage on lock order).
        graft_active_jobs_claim($2::text, $5::int, $6::boolean) AS active
    ), ft AS (
      INSERT INTO fine_tunes (id, tenant_id, status, base_model_id, dataset_id, test_dataset_id, request, resources, idempotency_key, request_hash, epochs, updated_at)
      SELECT $7::text, $2::text, 'queued'::"FineTuneStatus", $3::text, $8::text, $9::text, $10::jsonb, $11::jsonb, $12::text, $13::text, $14::int, now()
      FROM ok
      WHERE cardinality(ok.datasets) = cardinality($1::text[])
        AND NOT coalesce(ok.base_deleted, false)
        AND (ok.ft_base OR NOT $4::boolean)
        AND NOT ok.webhooks_wanted
        AND ($5::int = 0 OR ok.active < $5::int)
      RETURNING *
    ), ev AS (
      INSERT INTO events (id, fine_tune_id, level, type, message, data)
      SELECT $15::text, ft.id, 'info'::"EventLevel", $16::text, $17::text, $18::jsonb FROM ft
    )
    SELECT ok.datasets, ok.base_deleted, ok.ft_base, ok.webhooks_wanted, ok.active, (SELECT to_jsonb(ft) FROM ft) AS row FROM ok`;

/** The single-statement path; null when an endpoint wants the queued event (then the caller records its deliveries in a transaction). */
async function createPlainFineTune(db: Db, f: NewFineTune, exact: boolean): Promise<FineTuneRow | null> {
  const id = newId('fineTune');
  const tenantId = f.tenantId ?? DEFAULT_TENANT;
  const spec = f.spec;
  const datasetIds = [spec.dataset, ...(spec.testDataset ? [spec.testDataset] : [])];
  const isFineTuneBase = spec.baseModel.startsWith(`${ID_PREFIX.fineTune}_`);
  const event = { id: newId('event'), level: 'info', type: 'status', message: 'Job queued', data: { status: 'queued' } };
  const maxActive = f.maxActiveJobs ?? 0;
  const values = [
    datasetIds, tenantId, spec.baseModel, isFineTuneBase, maxActive, exact, id, spec.dataset, spec.testDataset ?? null, JSON.stringify(spec),
    f.resources ? JSON.stringify(f.resources) : null, f.idempotencyKey ?? null, f.requestHash, spec.hyperparameters.epochs + spec.hyperparameters.fineTuneEpochs,
    event.id, event.type, event.message, JSON.stringify(event.data),
  ];
  // A named prepared statement on the pool: parsed and planned once per connection, and no Prisma
  // query interpretation (a tenth of the API's CPU per create when it went through $queryRaw).
  const pool = poolOf(db);
  const insert = pool
    ? pool.query<InsertedRow>({ name: 'graft_create_fine_tune', text: CREATE_FINE_TUNE, values }).then((r) => r.rows)
    : db.$queryRawUnsafe<InsertedRow[]>(CREATE_FINE_TUNE, ...values);
  const [r] = await insert;
  if (!r) throw new Error('the insert of a fine-tune returned nothing');
  for (const [param, dataset] of [['dataset', spec.dataset], ['testDataset', spec.testDataset]] as const) {
    if (dataset && !r.datasets.includes(dataset)) throw new GraftError('dataset_not_found', `No dataset ${dataset}.`, param);
  }
  // No row for a bm_ id: a catalog base, which nothing can delete and every tenant may use; another tenant's base is "not found".
  if (isFineTuneBase ? !r.ft_base : r.base_deleted === true) throw new GraftError('base_model_not_found', `No base model ${spec.baseModel}.`, 'baseModel');
  if (r.webhooks_wanted) return null;
  if (maxActive && r.active >= maxActive) throw activeJobsQuota(r.active, maxActive);
  if (!r.row) return null;
  return fineTuneRowOf(r.row);
}

/** A `fine_tunes` row, read by node-postgres or as JSON (`to_jsonb`) → the row Prisma would return. */
function fineTuneRowOf(j: Record<string, unknown>): FineTuneRow {
  const date = (v: unknown) => (v === null || v === undefined ? null : new Date(v as string | Date));
  return {
    id: j.id as string,
    tenantId: j.tenant_id as string,
    status: j.status as FineTuneStatus,
    baseModelId: j.base_model_id as string,
    datasetId: j.dataset_id as string,
    testDatasetId: (j.test_dataset_id as string | null) ?? null,
    request: j.request as Prisma.JsonValue,
    resources: (j.resources ?? null) as Prisma.JsonValue,
    idempotencyKey: (j.idempotency_key as string | null) ?? null,
    requestHash: j.request_hash as string,
    phase: j.phase as string,
    epoch: j.epoch as number,
    epochs: j.epochs as number,
    batch: j.batch as number,
    batches: j.batches as number,
    latestMetrics: (j.latest_metrics ?? null) as Prisma.JsonValue,
    result: (j.result ?? null) as Prisma.JsonValue,
    error: (j.error ?? null) as Prisma.JsonValue,
    modelKey: (j.model_key as string | null) ?? null,
    modelBytes: j.model_bytes === null || j.model_bytes === undefined ? null : BigInt(j.model_bytes as string | number),
    attempts: j.attempts as number,
    createdAt: date(j.created_at)!,
    updatedAt: date(j.updated_at)!,
    startedAt: date(j.started_at),
    finishedAt: date(j.finished_at),
    cancelRequestedAt: date(j.cancel_requested_at),
    webhookUrl: (j.webhook_url as string | null) ?? null,
    webhookEvents: (j.webhook_events ?? null) as Prisma.JsonValue,
    webhookSecret: (j.webhook_secret as string | null) ?? null,
  };
}

/** Inserts a queued job, its first events and their webhook deliveries in one interactive transaction. */
async function createFineTuneInTransaction(db: Db, f: NewFineTune, exact: boolean) {
  const id = newId('fineTune');
  const tenantId = f.tenantId ?? DEFAULT_TENANT;
  return db.$transaction(async (tx) => {
    // The rows it references first, then the tenant's counter (the single-statement path's order too).
    await lockReferences(tx, f.spec, tenantId);
    if (f.maxActiveJobs) {
      const [row] = await tx.$queryRaw<{ active: number }[]>`SELECT ${claimActiveJobs(tenantId, f.maxActiveJobs, exact)} AS active`;
      const active = row?.active ?? 0;
      if (active >= f.maxActiveJobs) {
        throw activeJobsQuota(active, f.maxActiveJobs);
      }
    }
    const row = await tx.fineTune.create({
      data: {
        id,
        tenantId,
        status: 'queued',
        baseModelId: f.spec.baseModel,
        datasetId: f.spec.dataset,
        testDatasetId: f.spec.testDataset,
        request: json(f.spec),
        ...(f.resources ? { resources: json(f.resources) } : {}),
        idempotencyKey: f.idempotencyKey ?? null,
        requestHash: f.requestHash,
        epochs: f.spec.hyperparameters.epochs + f.spec.hyperparameters.fineTuneEpochs,
        webhookUrl: f.webhook?.url ?? null,
        webhookEvents: f.webhook?.events ? json(f.webhook.events) : undefined,
        webhookSecret: f.webhook?.secret ?? null,
      },
    });
    await insertEvent(tx, { fineTuneId: id, level: 'info', type: 'status', message: 'Job queued', data: { status: 'queued' } });
    for (const e of f.events ?? []) await insertEvent(tx, { ...e, fineTuneId: id });
    return row;
  });
}

type Tx = Parameters<Parameters<Db['$transaction']>[0]>[0];

/** The job's datasets and base must be its tenant's (catalog bases are everyone's): another tenant's are "not found". */
async function lockReferences(tx: Tx, spec: FineTuneSpec, tenantId: string): Promise<void> {
  for (const [param, dataset] of [['dataset', spec.dataset], ['testDataset', spec.testDataset]] as const) {
    if (!dataset) continue;
    const rows = await tx.$queryRaw<unknown[]>`SELECT 1 FROM datasets WHERE id = ${dataset} AND tenant_id = ${tenantId} AND deleted_at IS NULL FOR SHARE`;
    if (rows.length === 0) throw new GraftError('dataset_not_found', `No dataset ${dataset}.`, param);
  }
  const base = spec.baseModel;
  const rows = base.startsWith(`${ID_PREFIX.fineTune}_`)
    ? await tx.$queryRaw<{ deleted: boolean; tenant_id: string }[]>`SELECT false AS deleted, tenant_id FROM fine_tunes WHERE id = ${base} FOR SHARE`
    : await tx.$queryRaw<{ deleted: boolean; tenant_id: string }[]>`SELECT deleted_at IS NOT NULL AS deleted, tenant_id FROM base_models WHERE id = ${base} FOR SHARE`;
  // No row for a bm_ id: a catalog base, which nothing can delete and every tenant may use.
  const row = rows[0];
  const gone = base.startsWith(`${ID_PREFIX.fineTune}_`) ? !row || row.tenant_id !== tenantId : !!row && (row.deleted || row.tenant_id !== tenantId);
  if (gone) throw new GraftError('base_model_not_found', `No base model ${base}.`, 'baseModel');
}

/**
 * Deletes an ended job with its events, metrics and checkpoints, unless a queued or running job
 * uses it as its base. Returns the storage keys of its files (model, checkpoints): the caller
 * removes them once this has committed.
 */
export async function deleteFineTune(db: Db, id: string, tenantId: string): Promise<DeleteOutcome<{ keys: string[] }>> {
  return db.$transaction(async (tx) => {
    const locked = await tx.$queryRaw<{ status: FineTuneStatus; model_key: string | null }[]>`SELECT status, model_key FROM fine_tunes WHERE id = ${id} AND tenant_id = ${tenantId} FOR UPDATE`;
    const row = locked[0];
    if (!row) return { ok: false, reason: 'not_found' } as const;
    if ((ACTIVE_STATUSES as readonly string[]).includes(row.status)) return { ok: false, reason: 'not_finished', jobId: id } as const;
    const user = await tx.fineTune.findFirst({ where: { status: { in: [...ACTIVE_STATUSES] }, baseModelId: id }, select: { id: true } });
    if (user) return { ok: false, reason: 'in_use', jobId: user.id } as const;
    const checkpoints = await tx.checkpoint.findMany({ where: { fineTuneId: id }, select: { storageKey: true } });
    await tx.fineTune.delete({ where: { id } });
    return { ok: true, value: { keys: [...(row.model_key ? [row.model_key] : []), ...checkpoints.map((c) => c.storageKey)] } } as const;
  });
}

/**
 * A job (of `tenantId`; null: of any tenant, for the worker, which works by job id). The hottest read
 * (every GET of a job, every poll): concurrent reads share one prepared statement per round trip
 * (`BatchedReader`: never an answer older than its request) when there is a pool.
 */
export async function getFineTune(db: Db, id: string, tenantId: TenantScope): Promise<FineTuneRow | null> {
  const pool = poolOf(db);
  if (!pool) return db.fineTune.findFirst({ where: { id, ...scoped(tenantId) } });
  const row = await jobReader(pool).get(id);
  // Another tenant's job is "not found", exactly as a missing one.
  return row && (tenantId === null || row.tenantId === tenantId) ? row : null;
}

const jobReader = (pool: pg.Pool) =>
  sharedReader(pool, { name: 'graft_get_fine_tunes', text: 'SELECT * FROM fine_tunes WHERE id = ANY($1::text[])' }, (r) => r.id as string, fineTuneRowOf);

/**
 * Idempotency keys are the tenant's own: two tenants may send the same key. Read by every keyed
 * create, batched as `getFineTune` (a tenant id never holds a newline, and a header value cannot).
 */
export async function findByIdempotencyKey(db: Db, tenantId: string, key: string): Promise<FineTuneRow | null> {
  const pool = poolOf(db);
  if (!pool) return db.fineTune.findUnique({ where: { tenantId_idempotencyKey: { tenantId, idempotencyKey: key } } });
  return (await keyReader(pool).get(`${tenantId}\n${key}`)) ?? null;
}

// Tenants and keys as two arrays: the unique index (tenant_id, idempotency_key) answers both
// `= ANY`s; a row pairing one request's tenant with another's key is not asked for, so ignored.
const keyReader = (pool: pg.Pool) =>
  sharedReader(
    pool,
    { name: 'graft_fine_tunes_by_keys', text: 'SELECT * FROM fine_tunes WHERE tenant_id = ANY($1::text[]) AND idempotency_key = ANY($2::text[])' },
    (r) => `${r.tenant_id as string}\n${r.idempotency_key as string}`,
    fineTuneRowOf,
    (pairs) => {
      const split = pairs.map((p) => [p.slice(0, p.indexOf('\n')), p.slice(p.indexOf('\n') + 1)] as const);
      return [[...new Set(split.map(([t]) => t))], [...new Set(split.map(([, k]) => k))]];
    },
  );

/** The tenant's jobs, newest first; `after` must be one of them (the route checks). */
export async function listFineTunes(db: Db, opts: { tenantId: string; limit: number; after?: string | undefined; status?: FineTuneStatus | undefined }) {
  const rows = await db.fineTune.findMany({
    where: { tenantId: opts.tenantId, ...(opts.status ? { status: opts.status } : {}) },
    take: opts.limit + 1,
    ...(opts.after ? { cursor: { id: opts.after }, skip: 1 } : {}),
    orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
  });
  return page(rows, opts.limit);
}

export type FineTunePatch = Partial<{
  phase: string;
  epoch: number;
  epochs: number;
  batch: number;
  batches: number;
  latestMetrics: unknown;
  result: unknown;
  error: { code: string; message: string; param?: string } | null;
  modelKey: string;
  modelBytes: bigint;
  startedAt: Date;
  finishedAt: Date;
  cancelRequestedAt: Date;
  attempts: { increment: number };
}>;

function toUpdate(p: FineTunePatch): Prisma.FineTuneUpdateManyMutationInput {
  const { latestMetrics, result, error, ...rest } = p;
  return {
    ...rest,
    ...(latestMetrics !== undefined ? { latestMetrics: json(latestMetrics) } : {}),
    ...(result !== undefined ? { result: json(result) } : {}),
    ...(error !== undefined ? { error: error === null ? undefined : json(error) } : {}),
  };
}

/**
 * One state transition: a single UPDATE guarded by the expected previous states, plus its event,
 * in one transaction. Returns false (and writes nothing) when the job was not in `from`.
 */
export async function transition(
  db: Db,
  id: string,
  from: readonly FineTuneStatus[],
  to: FineTuneStatus,
  patch: FineTunePatch,
  event: Omit<NewEvent, 'fineTuneId'>,
): Promise<boolean> {
  return db.$transaction(async (tx) => {
    const { count } = await tx.fineTune.updateMany({ where: { id, status: { in: [...from] } }, data: { ...toUpdate(patch), status: to } });
    if (count !== 1) return false;
    await insertEvent(tx, { ...event, fineTuneId: id });
    return true;
  });
}

/** Progress and other non-state fields, only while the job is running. */
export async function updateRunning(db: Db, id: string, patch: FineTunePatch): Promise<boolean> {
  const { count } = await db.fineTune.updateMany({ where: { id, status: 'running' }, data: toUpdate(patch) });
  return count === 1;
}

export interface ProgressUpdate {
  phase: string;
  epoch: number;
  epochs: number;
  batch: number;
  batches: number;
}

/** A progress update of a running job: the job row's latest progress and a row of its live feed, together. */
export async function recordProgress(db: Db, id: string, p: ProgressUpdate): Promise<boolean> {
  return db.$transaction(async (tx) => {
    const { count } = await tx.fineTune.updateMany({ where: { id, status: 'running' }, data: p });
    if (count !== 1) return false;
    await tx.progress.create({ data: { fineTuneId: id, ...p } });
    return true;
  });
}

/**
 * A resumed job's feed forgets the progress its lost attempt reported past the checkpoint it
 * resumes from (those batches are trained again and reported again), and any of the baseline.
 */
export async function forgetProgressAfter(db: Db, id: string, at: { epoch: number; batch: number | null }): Promise<number> {
  const { count } = await db.progress.deleteMany({
    where: {
      fineTuneId: id,
      OR: [
        { phase: 'baseline' },
        { phase: { not: 'baseline' }, epoch: { gt: at.epoch } },
        ...(at.batch !== null ? [{ phase: { not: 'baseline' }, epoch: at.epoch, batch: { gt: at.batch } }] : []),
      ],
    },
  });
  return count;
}

export async function requestCancel(db: Db, id: string): Promise<boolean> {
  const { count } = await db.fineTune.updateMany({
    where: { id, status: { in: ['queued', 'running'] }, cancelRequestedAt: null },
    data: { cancelRequestedAt: new Date() },
  });
  return count === 1;
}

/**
 * Removes a job that was created but could not be queued (the request answered 503): it was never
 * accepted, so it leaves no row and its Idempotency-Key can be used again.
 */
export async function discardUnqueued(db: Db, id: string): Promise<boolean> {
  const { count } = await db.fineTune.deleteMany({ where: { id, status: 'queued', startedAt: null } });
  return count === 1;
}

/** Jobs in a state, oldest first (the reconciler's scan; bounded). */
export function listByStatus(db: Db, status: FineTuneStatus, opts: { createdBefore?: Date; limit?: number } = {}) {
  return db.fineTune.findMany({
    where: { status, ...(opts.createdBefore ? { createdAt: { lt: opts.createdBefore } } : {}) },
    orderBy: { createdAt: 'asc' },
    take: opts.limit ?? 500,
    select: { id: true, status: true, cancelRequestedAt: true, attempts: true, startedAt: true, updatedAt: true, resources: true },
  });
}
