/**
 * The one place requests are made: base URL and API key, JSON and multipart bodies, error answers
 * turned into `GraftApiError`, time limits, and retries of what is safe to repeat (reads, and
 * creates that carry an Idempotency-Key) on a lost connection, 429, 502, 503 or 504.
 */
import { GraftApiError, GraftConnectionError } from './errors.ts';

export interface ClientOptions {
  /** The API's root, e.g. `http://localhost:3000`. Default: `GRAFT_URL`, else `http://127.0.0.1:3000`. */
  baseUrl?: string;
  /** Sent as `Authorization: Bearer <key>`. Default: `GRAFT_API_KEY` (none when unset). */
  apiKey?: string;
  /** Another fetch (a proxy agent, a test double). Default: the global `fetch`. */
  fetch?: typeof fetch;
  /** Time limit of one JSON request, connection to last byte. Default 60 s. Downloads and streams have none. */
  timeoutMs?: number;
  /** Retries of a safe request after a lost connection or a 429/502/503/504. Default 2. */
  maxRetries?: number;
  /** Extra headers on every request. */
  headers?: Record<string, string>;
}

export const DEFAULT_BASE_URL = 'http://127.0.0.1:3000';

/** The environment, where there is one (Node, Deno, Bun); browsers have none. */
function env(name: string): string | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  const v = proc?.env?.[name];
  return v === undefined || v === '' ? undefined : v;
}

export type Query = Record<string, string | number | boolean | undefined | null>;

export interface RequestOptions {
  query?: Query;
  /** Serialised as JSON. */
  json?: unknown;
  /** Sent as multipart/form-data (the runtime sets the boundary). */
  form?: FormData;
  /** Any other body, with its content type in `headers`. */
  body?: RequestInit['body'];
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Safe to send again (reads; creates with an Idempotency-Key). */
  retry?: boolean;
  /** Apply `timeoutMs` (JSON answers). Off for downloads and streams, whose length is unbounded. */
  timeout?: boolean;
}

const RETRY_STATUSES = new Set([429, 502, 503, 504]);

export class Http {
  readonly baseUrl: string;
  private readonly apiKey: string | undefined;
  private readonly fetchImpl: typeof fetch;
  private readonly timeoutMs: number;
  private readonly maxRetries: number;
  private readonly headers: Record<string, string>;

  constructor(opts: ClientOptions = {}) {
    this.baseUrl = (opts.baseUrl ?? env('GRAFT_URL') ?? DEFAULT_BASE_URL).replace(/\/+$/, '');
    this.apiKey = opts.apiKey ?? env('GRAFT_API_KEY');
    this.fetchImpl = opts.fetch ?? globalThis.fetch.bind(globalThis);
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.maxRetries = opts.maxRetries ?? 2;
    this.headers = opts.headers ?? {};
  }

  url(path: string, query?: Query): string {
    const u = new URL(this.baseUrl + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined && v !== null) u.searchParams.set(k, String(v));
    return u.toString();
  }

  /** The answer of a request whose status is 2xx (3xx are followed); any other status throws `GraftApiError`. */
  async request(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    const what = `${method} ${path}`;
    const headers: Record<string, string> = { accept: 'application/json', ...this.headers, ...opts.headers };
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    let body: RequestInit['body'] = opts.body;
    if (opts.json !== undefined) {
      body = JSON.stringify(opts.json);
      headers['content-type'] = 'application/json';
    } else if (opts.form) {
      body = opts.form;
    }
    const attempts = opts.retry ? this.maxRetries + 1 : 1;
    for (let attempt = 1; ; attempt++) {
      const signal = this.signal(opts);
      let res: Response;
      try {
        // A streamed body (an upload reporting progress) needs `duplex: 'half'` in Node's fetch.
        const init: RequestInit & { duplex?: 'half' } = { method, headers, body, signal, redirect: 'follow' };
        if (body instanceof ReadableStream) init.duplex = 'half';
        res = await this.fetchImpl(this.url(path, opts.query), init);
      } catch (err) {
        if (opts.signal?.aborted) throw opts.signal.reason ?? err;
        const timedOut = (err as Error)?.name === 'TimeoutError';
        if (attempt < attempts && !timedOut) {
          await backoff(attempt, opts.signal);
          continue;
        }
        const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
        const why = timedOut ? `no answer within ${this.timeoutMs} ms` : (cause?.code ?? cause?.message ?? (err as Error)?.message ?? String(err));
        throw new GraftConnectionError(`${what}: ${why} (${this.baseUrl})`, what, { cause: err });
      }
      if (res.ok) return res;
      if (attempt < attempts && RETRY_STATUSES.has(res.status)) {
        await res.body?.cancel().catch(() => undefined);
        await backoff(attempt, opts.signal, res.headers.get('retry-after'));
        continue;
      }
      throw await apiError(res, what);
    }
  }

  async json<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.request(method, path, { timeout: true, ...opts });
    return (await res.json()) as T;
  }

  private signal(opts: RequestOptions): AbortSignal | undefined {
    const timeout = opts.timeout ? AbortSignal.timeout(this.timeoutMs) : undefined;
    if (timeout && opts.signal) return AbortSignal.any([timeout, opts.signal]);
    return timeout ?? opts.signal;
  }
}

/** `{ error: { code, message, param? } }` as a `GraftApiError`; any other body keeps its status and text. */
async function apiError(res: Response, what: string): Promise<GraftApiError> {
  const text = await res.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; param?: unknown } };
    const e = body.error;
    if (e && typeof e.code === 'string') {
      return new GraftApiError(res.status, e.code, typeof e.message === 'string' ? e.message : e.code, typeof e.param === 'string' ? e.param : undefined, what);
    }
  } catch {
    // not JSON: a proxy's page, say
  }
  return new GraftApiError(res.status, `http_${res.status}`, `${what} answered ${res.status} ${res.statusText}${text ? `: ${text.slice(0, 200)}` : ''}`, undefined, what);
}

/** 0.5 s, 1 s, 2 s, … (or the server's Retry-After, up to 30 s), with jitter. */
function backoff(attempt: number, signal?: AbortSignal, retryAfter?: string | null): Promise<void> {
  const asked = retryAfter ? Number(retryAfter) * 1000 : NaN;
  const ms = Number.isFinite(asked) ? Math.min(asked, 30_000) : 500 * 2 ** (attempt - 1) * (0.75 + Math.random() / 2);
  return sleep(ms, signal);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
