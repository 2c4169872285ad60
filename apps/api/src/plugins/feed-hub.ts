/**
 * The fan-out hub behind Server-Sent Events: one Redis subscription per watched job per API
 * process, however many clients watch it, and one reader of the job's feed in Postgres per nudge.
 *
 * Writers (the worker, the API's own transitions) commit a row, then publish a nudge on the job's
 * channel. The hub reads the rows after its cursor and hands them to every watcher. Nudges are
 * only hints: a poll every `FEED_POLL_MS` reads anyway, so a lost message (a Redis reconnect, a
 * writer dying between commit and publish) delays a watcher but never loses a row.
 */
import { feed, fineTunes, type Db, type FineTuneRow } from '@graft/db';
import { createRedis, feedChannel } from '@graft/queue';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Redis } from 'ioredis';

type FeedEntry = feed.FeedEntry;

/** One watcher of a job, as the hub sees it. */
export interface FeedWatcher {
  /** New entries in order (may repeat entries the watcher replayed itself: it drops those by seq). */
  deliver(entries: FeedEntry[]): void;
  /** The job has ended (its final row) or is gone (null); nothing more will come. */
  end(job: FineTuneRow | null): void;
  /** The server is closing: stop without an ending (the client reconnects elsewhere with Last-Event-ID). */
  abort(): void;
}

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
export const isTerminal = (status: string) => TERMINAL.has(status);
const PAGE = 500;

class JobFeed {
  readonly watchers = new Set<FeedWatcher>();
  cursor = 0n;
  ready: Promise<void> = Promise.resolve();
  timer: NodeJS.Timeout | undefined;
  private reading = false;
  private again = false;

  constructor(
    readonly id: string,
    private readonly hub: FeedHub,
  ) {}

  /** Reads what follows the cursor and hands it on; a nudge during a read makes one more read. */
  async read(): Promise<void> {
    if (this.reading) {
      this.again = true;
      return;
    }
    this.reading = true;
    try {
      await this.ready;
      do {
        this.again = false;
        // The status is read before the rows: when it is final, the rows read next include its last event.
        // By id alone: the route that added a watcher has checked the job is the caller's.
        const job = await fineTunes.getFineTune(this.hub.db, this.id, null);
        for (;;) {
          const entries = await feed.listFeed(this.hub.db, this.id, this.cursor, PAGE);
          if (entries.length === 0) break;
          this.cursor = entries.at(-1)!.seq;
          for (const w of this.watchers) w.deliver(entries);
          if (entries.length < PAGE) break;
        }
        if (!job || isTerminal(job.status)) {
          for (const w of [...this.watchers]) w.end(job);
          this.hub.drop(this);
          return;
        }
      } while (this.again);
    } catch (err) {
      this.hub.log.warn({ err: (err as Error).message, jobId: this.id }, 'reading a job feed failed; the next nudge or poll retries');
    } finally {
      this.reading = false;
    }
  }
}

export class FeedHub {
  private subscriber: Redis | null = null;
  private readonly feeds = new Map<string, JobFeed>();

  constructor(
    readonly db: Db,
    readonly log: FastifyInstance['log'],
    private readonly opts: { redisUrl: string; prefix: string; pollMs: number },
  ) {}

  /** Jobs watched right now (each one Redis subscription). */
  get watchedJobs(): number {
    return this.feeds.size;
  }

  private connection(): Redis {
    if (!this.subscriber) {
      // Subscribed connections take no other command; ioredis re-subscribes after a reconnect.
      const sub = createRedis(this.opts.redisUrl, { blocking: true });
      sub.on('error', (err) => this.log.warn({ err: err.message }, 'feed subscriber connection error'));
      sub.on('message', (channel: string) => {
        const id = channel.slice(channel.lastIndexOf(':') + 1);
        void this.feeds.get(id)?.read();
      });
      this.subscriber = sub;
    }
    return this.subscriber;
  }

  /**
   * Adds a watcher; resolves once the job's channel is subscribed, so that every row committed from
   * then on reaches the watcher. Rows committed before are the watcher's to replay (after this).
   * Returns the function that removes it.
   */
  async watch(id: string, watcher: FeedWatcher): Promise<() => void> {
    let jobFeed = this.feeds.get(id);
    if (!jobFeed) {
      const created = new JobFeed(id, this);
      this.feeds.set(id, created);
      created.ready = (async () => {
        await this.connection().subscribe(feedChannel(this.opts.prefix, id));
        created.cursor = await feed.lastFeedSeq(this.db, id);
        created.timer = setInterval(() => void created.read(), this.opts.pollMs);
        created.timer.unref();
      })();
      created.ready.catch(() => this.drop(created));
      jobFeed = created;
    }
    jobFeed.watchers.add(watcher);
    try {
      await jobFeed.ready;
    } catch (err) {
      jobFeed.watchers.delete(watcher);
      throw err;
    }
    const joined = jobFeed;
    return () => {
      joined.watchers.delete(watcher);
      if (joined.watchers.size === 0) this.drop(joined);
    };
  }

  drop(jobFeed: JobFeed): void {
    if (this.feeds.get(jobFeed.id) !== jobFeed) return;
    this.feeds.delete(jobFeed.id);
    clearInterval(jobFeed.timer);
    // Commands on one connection run in order: a new SUBSCRIBE for this job lands after this.
    this.subscriber?.unsubscribe(feedChannel(this.opts.prefix, jobFeed.id)).catch(() => {});
  }

  /** Ends every stream (the server is closing) and the subscription. */
  close(): void {
    for (const jobFeed of [...this.feeds.values()]) {
      for (const w of [...jobFeed.watchers]) w.abort();
      this.drop(jobFeed);
    }
    this.subscriber?.disconnect();
    this.subscriber = null;
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    feedHub: FeedHub;
  }
}

export default fp(
  async function feedHub(app: FastifyInstance) {
    const hub = new FeedHub(app.db, app.log, { redisUrl: app.config.REDIS_URL, prefix: app.config.QUEUE_PREFIX, pollMs: app.config.FEED_POLL_MS });
    app.decorate('feedHub', hub);
    // Before the server waits for its connections to end: open streams would hold it forever.
    app.addHook('preClose', async () => hub.close());
  },
  { name: 'feed-hub', dependencies: ['services'] },
);
