/**
 * Tells a dependency that did not answer (Postgres or Redis down, frozen, unreachable, timed out)
 * from every other error, and retries work that must eventually reach Postgres.
 *
 * The shapes are those node-postgres, Prisma's pg adapter and ioredis really throw (see
 * test/faults): connection refused or reset, connect and query timeouts, a server shutting down,
 * a Redis command timeout or a client without a connection and with its offline queue off.
 */

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED']);
/** Postgres SQLSTATEs: query_canceled (statement timeout), admin/crash shutdown, cannot connect now, connection exceptions. */
const PG_STATES = new Set(['57014', '57P01', '57P02', '57P03', '08000', '08001', '08003', '08004', '08006', '53300']);
/** Prisma: cannot reach / timed out / closed connection / transaction could not start or expired. */
const PRISMA_CODES = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024', 'P2028']);
const MESSAGES = [
  /connection terminated/i,
  /timeout exceeded when trying to connect/i,
  /query read timeout/i,
  /connection (is )?closed/i,
  /server closed the connection/i,
  /the database system is (shutting down|starting up)/i,
  /canceling statement due to statement timeout/i,
  /terminating connection/i,
  /can't reach database server/i,
  /command timed out/i,
  /enableOfflineQueue options is false/i,
  /stream isn't writeable/i,
  /reached the max retries per request limit/i,
  /transaction api error/i,
  /unable to start a transaction in the given time/i,
  /client has encountered a connection error/i,
];

function* chain(err: unknown): Generator<Record<string, unknown>> {
  let e = err;
  for (let depth = 0; depth < 6 && e && typeof e === 'object'; depth++) {
    yield e as Record<string, unknown>;
    const o = e as { cause?: unknown; originalError?: unknown };
    e = o.cause ?? o.originalError;
  }
}

export function isDependencyError(err: unknown): boolean {
  for (const e of chain(err)) {
    const code = typeof e.code === 'string' ? e.code : undefined;
    if (code && (NETWORK_CODES.has(code) || PG_STATES.has(code) || PRISMA_CODES.has(code))) return true;
    if (e.name === 'MaxRetriesPerRequestError' || e.name === 'PrismaClientInitializationError') return true;
    if (typeof e.originalCode === 'string' && PG_STATES.has(e.originalCode)) return true;
    const message = typeof e.message === 'string' ? e.message : '';
    if (MESSAGES.some((re) => re.test(message))) return true;
  }
  return false;
}

export interface RetryOptions {
  /** What is being retried, for the log. */
  what: string;
  /** Called before each wait with the error and the attempt number. */
  onRetry?: (err: unknown, attempt: number, waitMs: number) => void;
  /** Give up once this much time has passed (default: never, for a dependency error). */
  deadlineMs?: number;
  /** Other errors are retried this many times before they are thrown (a bug retried for ever helps no one). */
  otherErrorAttempts?: number;
  firstWaitMs?: number;
  maxWaitMs?: number;
  signal?: AbortSignal;
}

export class RetryGaveUp extends Error {
  constructor(what: string, cause: unknown) {
    super(`${what}: gave up retrying: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = 'RetryGaveUp';
  }
}

/**
 * Runs `fn` until it succeeds: a dependency error is retried with exponential backoff (jittered,
 * capped) until `deadlineMs` if any; any other error `otherErrorAttempts` times.
 */
export async function retry<T>(fn: () => Promise<T>, opts: RetryOptions): Promise<T> {
  const started = Date.now();
  const first = opts.firstWaitMs ?? 200;
  const max = opts.maxWaitMs ?? 5_000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const dependency = isDependencyError(err);
      if (!dependency && attempt >= (opts.otherErrorAttempts ?? 3)) throw err;
      const wait = Math.min(max, first * 2 ** Math.min(attempt - 1, 10)) * (0.75 + Math.random() * 0.5);
      if (opts.deadlineMs !== undefined && Date.now() - started + wait > opts.deadlineMs) throw new RetryGaveUp(opts.what, err);
      if (opts.signal?.aborted) throw err;
      opts.onRetry?.(err, attempt, Math.round(wait));
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}
