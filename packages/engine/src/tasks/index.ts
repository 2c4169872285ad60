/**
 * Tasks: what differs between image and text classification, behind one interface (`task.ts`);
 * the pipeline asks this registry for the task of a base (its descriptor's `task`) or of a bundle.
 * Implementations load lazily, so a task's dependencies load only when it is used.
 */
import { TrainingError } from '../errors.ts';
import type { Task, TaskName } from './task.ts';

export type * from './task.ts';

const TASKS: Partial<Record<TaskName, () => Promise<Task>>> = {
  'image-classification': async () => (await import('./image/task.ts')).imageTask,
  'text-classification': async () => (await import('./text/task.ts')).textTask,
};

/** The task a base or dataset is for. TrainingError `task_mismatch` for a task this engine cannot train. */
export async function loadTask(name: string): Promise<Task> {
  const load = TASKS[name as TaskName];
  if (!load) throw new TrainingError('task_mismatch', `This engine has no "${name}" task (it has ${Object.keys(TASKS).join(', ')}).`);
  return load();
}

/** Every task, for recognising a bundle. */
export async function allTasks(): Promise<Task[]> {
  return Promise.all(Object.values(TASKS).map((load) => load()));
}
