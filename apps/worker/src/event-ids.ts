/**
 * Deterministic event ids for what a training process reports. A job resumed from a checkpoint
 * trains again what its lost attempt did after that checkpoint, and prepares its data and model
 * again: the same event (same job, kind and text, the n-th of them; an epoch by its phase and
 * number) gets the same id, so it is recorded once (events.insertEvent skips a known id).
 */
import { createHash } from 'node:crypto';
import { ID_PREFIX } from '@graft/contracts';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

export function eventIdFor(fineTuneId: string, key: string): string {
  const digest = createHash('sha256').update(`${fineTuneId}\n${key}`).digest();
  let out = '';
  for (let i = 0; i < 26; i++) out += ALPHABET[digest[i]! % 32];
  return `${ID_PREFIX.event}_${out}`;
}

/** Ids for one attempt's events: the n-th occurrence of the same kind and text gets the n-th id. */
export function trainerEventIds(fineTuneId: string) {
  const seen = new Map<string, number>();
  return {
    /** `type` + `message`; a resume's own events stay distinct (each resume happened). */
    event(type: string, message: string): string | undefined {
      if (type === 'resumed' || type === 'resume_refused') return undefined;
      const key = `event\n${type}\n${message}`;
      const n = (seen.get(key) ?? 0) + 1;
      seen.set(key, n);
      return eventIdFor(fineTuneId, `${key}\n${n}`);
    },
    epoch: (phase: string, epoch: number) => eventIdFor(fineTuneId, `epoch\n${phase}\n${epoch}`),
  };
}
