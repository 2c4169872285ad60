import { newId, type FineTuneSpec, type FineTuneStatus } from '@graft/contracts';
import type { Db } from './client.ts';
import type { Prisma } from './generated/prisma/client.ts';
import { page } from './datasets.ts';
import type { NewEvent } from './events.ts';

export interface NewFineTune {
  spec: FineTuneSpec;
  idempotencyKey?: string | undefined;
  requestHash: string;
  /** Events to record right after "Job queued" (e.g. warnings found while validating the request). */
  events?: Omit<NewEvent, 'fineTuneId'>[];
}

const json = (v: unknown) => v as Prisma.InputJsonValue;

/** Inserts a queued job and its first events in one transaction. */
export async function createFineTune(db: Db, f: NewFineTune) {
  const id = newId('fineTune');
  const [row] = await db.$transaction([
    db.fineTune.create({
      data: {
        id,
        status: 'queued',
        baseModelId: f.spec.baseModel,
        datasetId: f.spec.dataset,
        testDatasetId: f.spec.testDataset,
        request: json(f.spec),
        idempotencyKey: f.idempotencyKey ?? null,
        requestHash: f.requestHash,
        epochs: f.spec.hyperparameters.epochs + f.spec.hyperparameters.fineTuneEpochs,
      },
    }),
    db.event.create({
      data: { id: newId('event'), fineTuneId: id, level: 'info', type: 'status', message: 'Job queued', data: json({ status: 'queued' }) },
    }),
    ...(f.events ?? []).map((e) =>
      db.event.create({ data: { id: newId('event'), fineTuneId: id, level: e.level, type: e.type, message: e.message, data: json(e.data ?? null) } }),
    ),
  ]);
  return row;
}

export function getFineTune(db: Db, id: string) {
  return db.fineTune.findUnique({ where: { id } });
}

export function findByIdempotencyKey(db: Db, key: string) {
  return db.fineTune.findUnique({ where: { idempotencyKey: key } });
}

export async function listFineTunes(db: Db, opts: { limit: number; after?: string | undefined; status?: FineTuneStatus | undefined }) {
  const rows = await db.fineTune.findMany({
    where: opts.status ? { status: opts.status } : {},
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
  error: { code: string; message: string } | null;
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
    await tx.event.create({
      data: { id: newId('event'), fineTuneId: id, level: event.level, type: event.type, message: event.message, data: json(event.data ?? null) },
    });
    return true;
  });
}

/** Progress and other non-state fields, only while the job is running. */
export async function updateRunning(db: Db, id: string, patch: FineTunePatch): Promise<boolean> {
  const { count } = await db.fineTune.updateMany({ where: { id, status: 'running' }, data: toUpdate(patch) });
  return count === 1;
}

export async function requestCancel(db: Db, id: string): Promise<boolean> {
  const { count } = await db.fineTune.updateMany({
    where: { id, status: { in: ['queued', 'running'] }, cancelRequestedAt: null },
    data: { cancelRequestedAt: new Date() },
  });
  return count === 1;
}
