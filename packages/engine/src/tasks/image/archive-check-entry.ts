/** The child process of `ArchiveCheckPool`: archive inspections, one at a time, answered to the parent. */
import { serveChildTasks } from '../../util/child-tasks.ts';
import { inspectArchive } from './dataset-archive.ts';
import type { ArchiveCheckRequest } from './archive-check.ts';

serveChildTasks((req: ArchiveCheckRequest) => inspectArchive(req.path, req.limits, req.archiveLimits));
