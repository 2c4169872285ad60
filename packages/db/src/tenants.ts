/**
 * Tenants and their API keys. A key is `gk_live_` + 43 base64url characters (32 random bytes); its
 * first 16 characters are its `prefix`, stored in clear to find the row and to tell keys apart in
 * lists. Only the key's sha256 is stored: a key is 256 random bits, so a fast hash is enough (there
 * is no dictionary to try, unlike passwords that need a slow one). The secret is returned once, by
 * `createApiKey`, and never again.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { newId } from '@graft/contracts';
import type { Db } from './client.ts';

/** The tenant development mode (AUTH=none) serves every request as, created by the migration. */
export const DEFAULT_TENANT = 'default';

export const KEY_PREFIX = 'gk_live_';
const PREFIX_LENGTH = KEY_PREFIX.length + 8;
const KEY_PATTERN = /^gk_live_[A-Za-z0-9_-]{43}$/;

export const hashKey = (key: string): string => createHash('sha256').update(key).digest('hex');

export function createTenant(db: Db, name: string) {
  return db.tenant.create({ data: { id: newId('tenant'), name } });
}

export function getTenant(db: Db, id: string) {
  return db.tenant.findUnique({ where: { id } });
}

export function listTenants(db: Db) {
  return db.tenant.findMany({ orderBy: [{ createdAt: 'asc' }, { id: 'asc' }], include: { _count: { select: { apiKeys: { where: { revokedAt: null } } } } } });
}

/** Creates a key for a tenant; `key` is the secret, to show once. */
export async function createApiKey(db: Db, tenantId: string, name = '') {
  for (;;) {
    const key = KEY_PREFIX + randomBytes(32).toString('base64url');
    try {
      const row = await db.apiKey.create({ data: { id: newId('apiKey'), tenantId, prefix: key.slice(0, PREFIX_LENGTH), hash: hashKey(key), name } });
      return { row, key };
    } catch (err) {
      // Two keys sharing their first 8 random characters (1 in 2^48): draw another.
      if ((err as { code?: string }).code === 'P2002') continue;
      throw err;
    }
  }
}

export function listApiKeys(db: Db, opts: { tenantId?: string | undefined } = {}) {
  return db.apiKey.findMany({
    where: opts.tenantId ? { tenantId: opts.tenantId } : {},
    orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
    select: { id: true, tenantId: true, prefix: true, name: true, createdAt: true, lastUsedAt: true, revokedAt: true },
  });
}

/** Revokes a key (idempotent); false when no key has that id. */
export async function revokeApiKey(db: Db, id: string): Promise<boolean> {
  const row = await db.apiKey.findUnique({ where: { id }, select: { revokedAt: true } });
  if (!row) return false;
  if (!row.revokedAt) await db.apiKey.update({ where: { id }, data: { revokedAt: new Date() } });
  return true;
}

export interface VerifiedKey {
  keyId: string;
  tenantId: string;
}

/**
 * The key's owner, or null for a malformed, unknown or revoked key. The row is found by the public
 * prefix and the hashes compared in constant time, so the answer's timing says nothing about how
 * much of a guessed secret was right.
 */
export async function verifyApiKey(db: Db, key: string): Promise<VerifiedKey | null> {
  if (!KEY_PATTERN.test(key)) return null;
  const row = await db.apiKey.findUnique({ where: { prefix: key.slice(0, PREFIX_LENGTH) }, select: { id: true, tenantId: true, hash: true, revokedAt: true } });
  if (!row) return null;
  const given = Buffer.from(hashKey(key), 'hex');
  const stored = Buffer.from(row.hash, 'hex');
  if (given.length !== stored.length || !timingSafeEqual(given, stored) || row.revokedAt) return null;
  return { keyId: row.id, tenantId: row.tenantId };
}

/** Records a key's use, at most once a minute (the guard is in the UPDATE, so processes agree). */
export async function touchApiKey(db: Db, id: string): Promise<void> {
  await db.$executeRaw`UPDATE api_keys SET last_used_at = now() WHERE id = ${id} AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')`;
}
