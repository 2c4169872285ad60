/**
 * Datasets, base models, webhook endpoints and workers: upload / register / create, list, retrieve,
 * delete. One method per route of the OpenAPI document (test/operations.test.ts holds the map).
 */
import type { Http } from './http.ts';
import type {
  BaseModel,
  BaseModelDeleted,
  CreateWebhookEndpointBody,
  Dataset,
  DatasetSample,
  DatasetDeleted,
  FileData,
  Page,
  PageParams,
  RegisterBaseModelParams,
  GraftWorker,
  UploadDatasetParams,
  WebhookEndpoint,
  WebhookEndpointCreated,
  WebhookEndpointDeleted,
} from './types.ts';

const path = (...parts: string[]) => parts.map((p, i) => (i === 0 ? p : encodeURIComponent(p))).join('/');

/** A Blob of the data, and the name to send it under. */
export function toBlob(file: FileData, filename: string | undefined, fallback: string, type = 'application/octet-stream'): { blob: Blob; name: string } {
  const blob = file instanceof Blob ? file : new Blob([(file instanceof ArrayBuffer ? new Uint8Array(file) : file) as Uint8Array<ArrayBuffer>], { type }); // DOM's BlobPart refuses a view of a SharedArrayBuffer
  const named = file as { name?: unknown };
  const own = typeof named.name === 'string' ? named.name : undefined;
  return { blob, name: filename ?? own ?? fallback };
}

/**
 * multipart/form-data as a stream, counting the file's bytes as they are sent (`FormData` gives no
 * progress): the fields, then the file part.
 */
export function multipartStream(fields: [string, string][], file: { field: string; name: string; blob: Blob }, onProgress: (sent: number, total: number) => void): { body: ReadableStream<Uint8Array>; contentType: string } {
  const boundary = `----graft${globalThis.crypto.randomUUID().replaceAll('-', '')}`;
  const quote = (s: string) => s.replace(/["\r\n]/g, (c) => encodeURIComponent(c));
  const enc = new TextEncoder();
  const head = enc.encode(
    fields.map(([k, v]) => `--${boundary}\r\nContent-Disposition: form-data; name="${quote(k)}"\r\n\r\n${v}\r\n`).join('') +
      `--${boundary}\r\nContent-Disposition: form-data; name="${quote(file.field)}"; filename="${quote(file.name)}"\r\nContent-Type: ${file.blob.type || 'application/octet-stream'}\r\n\r\n`,
  );
  const tail = enc.encode(`\r\n--${boundary}--\r\n`);
  const total = file.blob.size;
  let sent = 0;
  let reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(head);
      onProgress(0, total);
    },
    async pull(c) {
      reader ??= file.blob.stream().getReader();
      const { done, value } = await reader.read();
      if (done) {
        c.enqueue(tail);
        c.close();
        return;
      }
      c.enqueue(value);
      sent += value.length;
      onProgress(sent, total);
    },
    cancel: (reason) => reader?.cancel(reason),
  });
  return { body, contentType: `multipart/form-data; boundary=${boundary}` };
}

export class Datasets {
  constructor(private readonly http: Http) {}

  /** `POST /v1/datasets`: an image zip (class folders) or a text CSV/JSONL file, checked in full before it is accepted. */
  upload(params: UploadDatasetParams, opts: { signal?: AbortSignal; onProgress?: (sent: number, total: number) => void } = {}): Promise<Dataset> {
    const fields: [string, string][] = [['task', params.task]];
    if (params.name !== undefined) fields.push(['name', params.name]);
    if (params.maxInvalidShare !== undefined) fields.push(['maxInvalidShare', String(params.maxInvalidShare)]);
    if (params.baseModel !== undefined) fields.push(['baseModel', params.baseModel]);
    const { blob, name } = toBlob(params.file, params.filename, 'dataset.zip');
    // No time limit: a large archive takes as long as it takes to send and check.
    if (opts.onProgress) {
      const { body, contentType } = multipartStream(fields, { field: 'file', name, blob }, opts.onProgress);
      return this.http.request('POST', '/v1/datasets', { body, headers: { 'content-type': contentType }, signal: opts.signal }).then((r) => r.json() as Promise<Dataset>);
    }
    const form = new FormData();
    for (const [k, v] of fields) form.append(k, v);
    form.append('file', blob, name);
    return this.http.request('POST', '/v1/datasets', { form, signal: opts.signal }).then((r) => r.json() as Promise<Dataset>);
  }

  list(params: PageParams = {}, opts: { signal?: AbortSignal } = {}): Promise<Page<Dataset>> {
    return this.http.json('GET', '/v1/datasets', { query: { ...params }, retry: true, signal: opts.signal });
  }

  retrieve(id: string, opts: { signal?: AbortSignal } = {}): Promise<Dataset> {
    return this.http.json('GET', path('/v1/datasets', id), { retry: true, signal: opts.signal });
  }

  /** `GET /v1/datasets/:id/samples`: the first examples of each class (images as data URIs, or texts). */
  samples(id: string, params: { perClass?: number } = {}, opts: { signal?: AbortSignal } = {}): Promise<{ data: DatasetSample[] }> {
    return this.http.json('GET', `${path('/v1/datasets', id)}/samples`, { query: { ...params }, retry: true, signal: opts.signal });
  }

  /** Refused (409 `resource_in_use`) while a queued or running job uses it. */
  delete(id: string, opts: { signal?: AbortSignal } = {}): Promise<DatasetDeleted> {
    return this.http.json('DELETE', path('/v1/datasets', id), { signal: opts.signal });
  }
}

export class BaseModels {
  constructor(private readonly http: Http) {}

  list(params: PageParams = {}, opts: { signal?: AbortSignal } = {}): Promise<Page<BaseModel>> {
    return this.http.json('GET', '/v1/base-models', { query: { ...params }, retry: true, signal: opts.signal });
  }

  /** A catalog or registered `bm_…`, or a succeeded `ft_…` as a base. */
  retrieve(id: string, opts: { signal?: AbortSignal } = {}): Promise<BaseModel> {
    return this.http.json('GET', path('/v1/base-models', id), { retry: true, signal: opts.signal });
  }

  /** `POST /v1/base-models`: a model zip with its spec (multipart), or a hosted model by `url` (JSON). */
  register(params: RegisterBaseModelParams, opts: { signal?: AbortSignal } = {}): Promise<BaseModel> {
    if ('file' in params) {
      const form = new FormData();
      form.append('spec', JSON.stringify(params.spec));
      const { blob, name } = toBlob(params.file, params.filename, 'model.zip', 'application/zip');
      form.append('file', blob, name);
      return this.http.request('POST', '/v1/base-models', { form, signal: opts.signal }).then((r) => r.json() as Promise<BaseModel>);
    }
    // The API fetches and checks the model: allow it more than one JSON request's time.
    return this.http.request('POST', '/v1/base-models', { json: params, signal: opts.signal }).then((r) => r.json() as Promise<BaseModel>);
  }

  /** Only registered bases; refused (409) while a job uses it. */
  delete(id: string, opts: { signal?: AbortSignal } = {}): Promise<BaseModelDeleted> {
    return this.http.json('DELETE', path('/v1/base-models', id), { signal: opts.signal });
  }
}

export class WebhookEndpoints {
  constructor(private readonly http: Http) {}

  /** `POST /v1/webhook-endpoints`: answers the signing `secret` (`whsec_…`) once, never again. */
  create(body: CreateWebhookEndpointBody, opts: { signal?: AbortSignal } = {}): Promise<WebhookEndpointCreated> {
    return this.http.json('POST', '/v1/webhook-endpoints', { json: body, signal: opts.signal });
  }

  list(params: PageParams = {}, opts: { signal?: AbortSignal } = {}): Promise<Page<WebhookEndpoint>> {
    return this.http.json('GET', '/v1/webhook-endpoints', { query: { ...params }, retry: true, signal: opts.signal });
  }

  retrieve(id: string, opts: { signal?: AbortSignal } = {}): Promise<WebhookEndpoint> {
    return this.http.json('GET', path('/v1/webhook-endpoints', id), { retry: true, signal: opts.signal });
  }

  /** Its pending deliveries are cancelled; past ones stay listed on their jobs. */
  delete(id: string, opts: { signal?: AbortSignal } = {}): Promise<WebhookEndpointDeleted> {
    return this.http.json('DELETE', path('/v1/webhook-endpoints', id), { signal: opts.signal });
  }
}

export class Workers {
  constructor(private readonly http: Http) {}

  /** `GET /v1/workers`: every live worker (one page), its capabilities and the jobs it runs now. */
  list(opts: { signal?: AbortSignal } = {}): Promise<Page<GraftWorker>> {
    return this.http.json('GET', '/v1/workers', { retry: true, signal: opts.signal });
  }
}

export { path };
