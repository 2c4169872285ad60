/**
 * HTTP(S) requests to URLs users give graft (hosted base models, webhooks), guarded against SSRF:
 * the address each connection is made to is the address that was checked (the check sits in the
 * socket's DNS lookup, so a name cannot resolve once to a public and then to a private address);
 * IP literals are checked before connecting; redirects are followed by hand, each hop checked the
 * same way; the whole exchange has one deadline and the body a byte bound; nothing is decompressed.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import http, { type IncomingMessage, type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { Readable } from 'node:stream';
import { checkAddress, parseAllowList, type AllowEntry } from './address-policy.ts';
import { OutboundError } from './outbound-error.ts';

export const OUTBOUND_DEFAULTS = {
  /** Bytes of one answer's body. */
  maxBytes: 32 * 1024 * 1024,
  /** The whole exchange, redirects and body included. */
  timeoutMs: 30_000,
  maxRedirects: 5,
};

export interface OutboundOptions {
  /** Addresses the operator allows beyond the public ones (parsed list, or its text: see parseAllowList). */
  allow?: readonly AllowEntry[] | string;
  method?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  maxBytes?: number;
  timeoutMs?: number;
  /** 0: a redirect answer is returned as it is. */
  maxRedirects?: number;
  signal?: AbortSignal;
}

export interface OutboundResponse {
  status: number;
  headers: Record<string, string>;
  /** The URL that answered (after redirects). */
  url: string;
  /** The body, bounded by maxBytes and the deadline (it errors with an OutboundError past either). */
  body: Readable;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** Opens a guarded request and resolves with the status and headers; the body streams after. */
export async function openOutbound(target: string | URL, opts: OutboundOptions = {}): Promise<OutboundResponse> {
  const allow = typeof opts.allow === 'string' ? parseAllowList(opts.allow) : (opts.allow ?? []);
  const maxBytes = opts.maxBytes ?? OUTBOUND_DEFAULTS.maxBytes;
  const timeoutMs = opts.timeoutMs ?? OUTBOUND_DEFAULTS.timeoutMs;
  const maxRedirects = opts.maxRedirects ?? OUTBOUND_DEFAULTS.maxRedirects;
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = opts.signal ? AbortSignal.any([deadline, opts.signal]) : deadline;

  let url = parseUrl(String(target));
  let method = (opts.method ?? 'GET').toUpperCase();
  let body = opts.body;
  let headers = { ...lowerKeys(opts.headers ?? {}) };
  for (let hops = 0; ; hops++) {
    let res: IncomingMessage;
    try {
      res = await hop(url, method, headers, body, allow, signal);
    } catch (err) {
      throw failure(err, signal, deadline, opts.signal, timeoutMs);
    }
    const location = res.headers.location;
    if (!REDIRECTS.has(res.statusCode ?? 0) || !location || maxRedirects === 0) {
      return { status: res.statusCode ?? 0, headers: flatHeaders(res.headers), url: url.href, body: bounded(res, maxBytes, signal, deadline, opts.signal, timeoutMs) };
    }
    res.resume();
    if (hops + 1 > maxRedirects) throw new OutboundError('too_many_redirects', `more than ${maxRedirects} redirects from ${String(target)}`);
    const next = parseUrl(location, url);
    // Like browsers: 303 (and 301/302 after anything but GET/HEAD) continue as GET without a body.
    if (res.statusCode === 303 || ((res.statusCode === 301 || res.statusCode === 302) && method !== 'GET' && method !== 'HEAD')) {
      method = 'GET';
      body = undefined;
      delete headers['content-type'];
      delete headers['content-length'];
    }
    // Credentials are for the origin they were given for.
    if (next.origin !== url.origin) {
      const { authorization: _a, cookie: _c, ...rest } = headers;
      headers = rest;
    }
    url = next;
  }
}

/** A guarded request whose body is read in full (within maxBytes). */
export async function fetchOutbound(target: string | URL, opts: OutboundOptions = {}): Promise<Omit<OutboundResponse, 'body'> & { body: Buffer }> {
  const res = await openOutbound(target, opts);
  const chunks: Buffer[] = [];
  for await (const c of res.body) chunks.push(c as Buffer);
  return { ...res, body: Buffer.concat(chunks) };
}

/**
 * A `fetch`-compatible function on top of the guard (for code that takes a fetch, such as the
 * hosted-model loader). Redirects are always followed by the guard, whatever `init.redirect` says.
 */
export function guardedFetch(defaults: Omit<OutboundOptions, 'method' | 'headers' | 'body' | 'signal'> = {}): typeof fetch {
  const allow = typeof defaults.allow === 'string' ? parseAllowList(defaults.allow) : defaults.allow;
  return async (input: string | URL | Request, init: RequestInit = {}) => {
    const url = input instanceof Request ? input.url : String(input);
    const headers: Record<string, string> = {};
    new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined)).forEach((v, k) => (headers[k] = v));
    const body = init.body == null ? undefined : typeof init.body === 'string' || init.body instanceof Uint8Array ? init.body : undefined;
    if (init.body != null && body === undefined) throw new TypeError('guardedFetch takes string or Uint8Array bodies only');
    const res = await openOutbound(url, { ...defaults, allow, method: init.method ?? 'GET', headers, body, signal: init.signal ?? undefined });
    const empty = res.status === 204 || res.status === 304 || (init.method ?? 'GET').toUpperCase() === 'HEAD';
    if (empty) res.body.resume();
    return new Response(empty ? null : (Readable.toWeb(res.body) as ReadableStream), { status: res.status, headers: res.headers });
  };
}

function parseUrl(text: string, base?: URL): URL {
  let url: URL;
  try {
    url = new URL(text, base);
  } catch {
    throw new OutboundError('invalid_url', `not a URL: ${text.slice(0, 200)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new OutboundError('invalid_url', `scheme ${url.protocol} in ${url.href.slice(0, 200)}`);
  return url;
}

function hop(url: URL, method: string, headers: Record<string, string>, body: string | Uint8Array | undefined, allow: readonly AllowEntry[], signal: AbortSignal): Promise<IncomingMessage> {
  const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  // Node connects to IP literals without a lookup: check them here.
  if (isIP(host)) {
    const why = checkAddress(host, port, allow);
    if (why) return Promise.reject(new OutboundError('forbidden_address', `${url.host}: ${why}`));
  }
  let refused: OutboundError | null = null;
  const lookup: LookupFunction = (hostname, options, callback) => {
    dnsLookup(hostname, { all: true, family: options.family ?? 0, hints: options.hints ?? 0 }, (err, addresses: LookupAddress[]) => {
      if (err) return (callback as (e: Error) => void)(err);
      // Every address must pass: the connection may be made to any of them.
      const why = addresses.length === 0 ? 'no address' : addresses.map((a) => checkAddress(a.address, port, allow)).find(Boolean);
      if (why) {
        refused = new OutboundError('forbidden_address', `${hostname}: ${why}`);
        return (callback as (e: Error) => void)(refused);
      }
      if (options.all) (callback as (e: null, a: LookupAddress[]) => void)(null, addresses);
      else (callback as (e: null, a: string, f: number) => void)(null, addresses[0]!.address, addresses[0]!.family);
    });
  };
  const mod = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(url, {
      method,
      headers: { 'user-agent': 'graft', 'accept-encoding': 'identity', ...headers, ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}) },
      agent: false, // a fresh connection per hop: no socket reused across checked addresses
      lookup,
      signal,
    });
    req.on('response', resolve);
    req.on('error', (err) => reject(refused ?? err));
    req.end(body);
  });
}

/** The body of an answer, bounded in bytes and by the deadline; any failure is an OutboundError. */
function bounded(res: IncomingMessage, maxBytes: number, signal: AbortSignal, deadline: AbortSignal, user: AbortSignal | undefined, timeoutMs: number): Readable {
  const declared = Number(res.headers['content-length']);
  async function* read() {
    if (declared > maxBytes) throw new OutboundError('too_large', `content-length ${declared} > ${maxBytes}`, maxBytes);
    const onAbort = () => res.destroy(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    let n = 0;
    try {
      if (signal.aborted) onAbort();
      for await (const chunk of res) {
        n += (chunk as Buffer).length;
        if (n > maxBytes) throw new OutboundError('too_large', `body beyond ${maxBytes} bytes`, maxBytes);
        yield chunk as Buffer;
      }
    } catch (err) {
      throw failure(err, signal, deadline, user, timeoutMs);
    } finally {
      signal.removeEventListener('abort', onAbort);
      res.destroy();
    }
  }
  return Readable.from(read(), { objectMode: false });
}

function failure(err: unknown, signal: AbortSignal, deadline: AbortSignal, user: AbortSignal | undefined, timeoutMs: number): Error {
  if (err instanceof OutboundError) return err;
  if (user?.aborted) return (user.reason as Error) ?? (err as Error); // the caller's own cancel stays theirs
  if (deadline.aborted || (signal.aborted && !user?.aborted)) return new OutboundError('timeout', `no complete answer within ${timeoutMs} ms`);
  const e = err as NodeJS.ErrnoException;
  return new OutboundError('unreachable', [e.code, e.message].filter(Boolean).join(': '));
}

function lowerKeys(h: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));
}

function flatHeaders(h: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}
