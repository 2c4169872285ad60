/** The worker thread of `inspectArchiveInThread`: one archive inspection, answered to the parent. */
import { workerData } from 'node:worker_threads';
import { serveThreadTask } from '../../util/bundled-thread.ts';
import { inspectArchive } from './dataset-archive.ts';
import type { ArchiveCheckRequest } from './archive-check.ts';

serveThreadTask((req: ArchiveCheckRequest) => inspectArchive(req.path, req.limits, req.archiveLimits), workerData as ArchiveCheckRequest);
