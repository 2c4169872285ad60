/**
 * `new Graft()`: the typed client of graft's API, on `fetch` alone.
 *
 * ```ts
 * const graft = new Graft({ baseUrl: 'http://localhost:3000' }); // default: GRAFT_URL, GRAFT_API_KEY
 * const ds = await graft.datasets.upload({ task: 'image-classification', file: await openAsBlob('photos.zip') });
 * const job = await graft.fineTunes.create({ baseModel: 'bm_mobilenet_v2', dataset: ds.id });
 * const done = await graft.fineTunes.waitUntilDone(job.id, { onProgress: (j) => console.log(j.progress) });
 * ```
 */
import { FineTunes } from './fine-tunes.ts';
import { Http, type ClientOptions } from './http.ts';
import { BaseModels, Datasets, WebhookEndpoints, Workers } from './resources.ts';

export class Graft {
  readonly datasets: Datasets;
  readonly baseModels: BaseModels;
  readonly fineTunes: FineTunes;
  readonly webhookEndpoints: WebhookEndpoints;
  readonly workers: Workers;
  private readonly http: Http;

  constructor(opts: ClientOptions = {}) {
    this.http = new Http(opts);
    this.datasets = new Datasets(this.http);
    this.baseModels = new BaseModels(this.http);
    this.fineTunes = new FineTunes(this.http);
    this.webhookEndpoints = new WebhookEndpoints(this.http);
    this.workers = new Workers(this.http);
  }

  /** The API root requests go to. */
  get baseUrl(): string {
    return this.http.baseUrl;
  }

  /** `GET /healthz`: the process is up (nothing else is checked). */
  health(opts: { signal?: AbortSignal } = {}): Promise<{ status: 'ok' }> {
    return this.http.json('GET', '/healthz', { retry: true, signal: opts.signal });
  }

  /** `GET /readyz`: Postgres and Redis answer; the live workers and their backend. */
  ready(opts: { signal?: AbortSignal } = {}): Promise<{ status: 'ready' | 'not_ready'; checks: Record<string, string>; workers: { id: string; backend: string; concurrency: number; since: string }[] }> {
    return this.http.json('GET', '/readyz', { retry: true, signal: opts.signal });
  }
}
