/**
 * The API, same origin. Calls go through @graft/client (typed by the contracts) with the API key the
 * person gave when the API first answered 401 (kept in localStorage). The client sends it as a bearer
 * token on every call, the live feed included: that is why the feed is read with fetch rather than
 * EventSource (which cannot send headers), and why downloads are fetched too (a plain link cannot).
 * A development server (AUTH=none) never answers 401, so no key is ever asked for there.
 */
import { Graft, GraftApiError } from '@graft/client';

const KEY_ITEM = 'graft.apiKey';
let apiKey = localStorage.getItem(KEY_ITEM) ?? undefined;
const client = () => new Graft({ baseUrl: location.origin, apiKey, maxRetries: 1 });
/** Live binding: replaced when the key changes. */
export let graft = client();

/** Remembers the key (null: forgets it) for every later call. */
export function setApiKey(key: string | null): void {
  if (key) localStorage.setItem(KEY_ITEM, key);
  else localStorage.removeItem(KEY_ITEM);
  apiKey = key ?? undefined;
  graft = client();
}

export const hasApiKey = (): boolean => apiKey !== undefined;

/** The API refused the key (or wants one). */
export const isUnauthorized = (err: unknown): boolean => err instanceof GraftApiError && err.status === 401;

/** What to show a person for a failed call. */
export function errorText(err: unknown): string {
  if (err instanceof GraftApiError) return `${err.message} (${err.code})`;
  return err instanceof Error ? err.message : String(err);
}

export { GraftApiError };

/** Headers for calls made outside the client (the upload, which needs XMLHttpRequest for its progress). */
export function authHeaders(): Record<string, string> {
  return apiKey ? { authorization: `Bearer ${apiKey}` } : {};
}

/**
 * POST a form with upload progress (fetch has none). Resolves with the JSON answer; rejects with a
 * GraftApiError built from the API's `{ error: { code, message, param } }`.
 */
export function postFormWithProgress<T>(path: string, form: FormData, onProgress: (sent: number, total: number) => void, signal?: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
    xhr.setRequestHeader('accept', 'application/json');
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : 0);
    xhr.onerror = () => reject(new Error('the connection failed'));
    xhr.onabort = () => reject(new DOMException('aborted', 'AbortError'));
    xhr.onload = () => {
      let body: unknown = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        /* not JSON */
      }
      if (xhr.status >= 200 && xhr.status < 300) return resolve(body as T);
      const e = (body as { error?: { code?: string; message?: string; param?: string } } | null)?.error;
      reject(new GraftApiError(xhr.status, e?.code ?? 'http_error', e?.message ?? `HTTP ${xhr.status}`, e?.param, `POST ${path}`));
    };
    signal?.addEventListener('abort', () => xhr.abort());
    xhr.send(form);
  });
}

/**
 * Saves a download (a model or checkpoint zip) under `filename`: fetched with the key, then handed to
 * the browser as an object URL, since a link cannot carry an Authorization header.
 */
export async function download(url: string, filename: string): Promise<void> {
  const res = await fetch(url, { headers: authHeaders() });
  if (!res.ok) {
    const body = (await res.json().catch(() => null)) as { error?: { code?: string; message?: string } } | null;
    throw new GraftApiError(res.status, body?.error?.code ?? 'http_error', body?.error?.message ?? `HTTP ${res.status}`, undefined, `GET ${url}`);
  }
  const href = URL.createObjectURL(await res.blob());
  const a = document.createElement('a');
  a.href = href;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 60_000);
}

/**
 * A download link: without a key it is a plain link (development mode); with one, a click fetches
 * the file with the key instead.
 */
export function downloadLink(url: string, filename: string, label: string, attrs: Record<string, string> = {}, onError?: (err: unknown) => void): HTMLAnchorElement {
  const a = document.createElement('a');
  for (const [k, v] of Object.entries(attrs)) a.setAttribute(k, v);
  a.href = url;
  a.download = filename;
  a.textContent = label;
  a.addEventListener('click', (e) => {
    if (!hasApiKey()) return;
    e.preventDefault();
    void download(url, filename).catch((err) => (onError ? onError(err) : alert(errorText(err))));
  });
  return a;
}
