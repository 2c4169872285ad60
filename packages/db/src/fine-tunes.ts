import { GraftError, ID_PREFIX, newId, type FineTuneSpec, type FineTuneStatus, type Resources } from '@graft/contracts';
import type { Db } from './client.ts';
import type { Prisma } from './generated/prisma/client.ts';
import { ACTIVE_STATUSES, page, scoped, type DeleteOutcome, type TenantScope } from './datasets.ts';
import { DEFAULT_TENANT } from './tenants.ts';
import { insertEvent, type NewEvent } from './events.ts';
import { activeJobs, lockTenantJobs } from './quotas.ts';

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
 * Inserts a queued job and its first events in one transaction. The datasets and the registered
 * base (or fine-tune) it uses are locked FOR SHARE first, so a concurrent DELETE of one of them
 * either waits and then sees this job, or has already left a tombstone and the job is refused.
 */
export async function createFineTune(db: Db, f: NewFineTune) {
  const id = newId('fineTune');
  const tenantId = f.tenantId ?? DEFAULT_TENANT;
  return db.$transaction(async (tx) => {
    await lockReferences(tx, f.spec, tenantId);
    if (f.maxActiveJobs) {
      await lockTenantJobs(tx, tenantId);
      const active = await activeJobs(tx, tenantId);
      if (active >= f.maxActiveJobs) {
        throw new GraftError(
          'quota_exceeded',
          `This tenant has ${active} jobs queued or running, its limit is ${f.maxActiveJobs}: wait for one to end (or cancel one) and retry.`,
          undefined,
          { retryAfterSeconds: ACTIVE_JOBS_RETRY_AFTER_S },
        );
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

/** A job (of `tenantId`; null: of any tenant, for the worker, which works by job id). */
export function getFineTune(db: Db, id: string, tenantId: TenantScope) {
  return db.fineTune.findFirst({ where: { id, ...scoped(tenantId) } });
}

/** Idempotency keys are the tenant's own: two tenants may send the same key. */
export function findByIdempotencyKey(db: Db, tenantId: string, key: string) {
  return db.fineTune.findUnique({ where: { tenantId_idempotencyKey: { tenantId, idempotencyKey: key } } });
}

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
