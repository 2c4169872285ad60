import { randomBytes } from 'node:crypto';

/** Prefixes of graft's opaque ids: the prefix tells a reader what kind of object an id names. */
export const ID_PREFIX = {
  dataset: 'ds',
  baseModel: 'bm',
  fineTune: 'ft',
  checkpoint: 'ck',
  event: 'ev',
  webhookEndpoint: 'we',
  tenant: 'tn',
  apiKey: 'key',
  /** Standard Webhooks' own prefix for message ids (`webhook-id`). */
  webhookDelivery: 'msg',
} as const;
export type IdKind = keyof typeof ID_PREFIX;

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz'; // Crockford base32, lower case

/**
 * `<prefix>_<10 chars of time><16 chars of randomness>`: sortable by creation time (to the
 * millisecond) so that ids read in roughly chronological order, and unguessable.
 */
export function newId(kind: IdKind, now = Date.now()): string {
  let time = '';
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32] + time;
    t = Math.floor(t / 32);
  }
  const bytes = randomBytes(16);
  let rand = '';
  for (const b of bytes) rand += ALPHABET[b % 32];
  return `${ID_PREFIX[kind]}_${time}${rand}`;
}

export function isId(kind: IdKind, value: string): boolean {
  return new RegExp(`^${ID_PREFIX[kind]}_[0-9a-z_-]{1,64}$`).test(value);
}
