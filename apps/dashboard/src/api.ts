/**
 * The API, same origin. Calls go through @graft/client (typed by the contracts); an API key, once
 * the API has them, is one option here (the client sends it as a bearer token on every call,
 * including the live feed, which is why the feed is read with fetch rather than EventSource).
 */
import { Graft, GraftApiError } from '@graft/client';

const apiKey = sessionStorage.getItem('graft.apiKey') ?? undefined;
export const graft = new Graft({ baseUrl: location.origin, apiKey, maxRetries: 1 });

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
