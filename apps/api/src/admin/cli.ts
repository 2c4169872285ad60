/**
 * `npm run admin -- <command>`: tenants and API keys, straight in Postgres (DATABASE_URL), for the
 * operator of a graft server (there is no HTTP route to mint keys: whoever holds the database holds
 * the keys).
 *
 *   tenants create <name>                   prints the new tenant's id
 *   tenants list
 *   keys create --tenant <id> [--name <n>]  prints the key ONCE (only its sha256 is stored)
 *   keys list [--tenant <id>]               prefixes, names, last use, revocation
 *   keys revoke <id>                        refused from then on (API processes may accept it for AUTH_CACHE_MS more)
 *
 * `--json` prints machine-readable output. Exit codes: 0 done, 1 failure, 2 usage, 3 not found.
 */
import { parseArgs } from 'node:util';
import { createDb, prepareDatabase, tenants } from '@graft/db';

const USAGE = `usage: npm run admin -- <command> [--json]
  tenants create <name>
  tenants list
  keys create --tenant <tenant id> [--name <name>]
  keys list [--tenant <tenant id>]
  keys revoke <key id>`;

class UsageError extends Error {}
class NotFound extends Error {}

const { values, positionals } = (() => {
  try {
    return parseArgs({ allowPositionals: true, options: { tenant: { type: 'string' }, name: { type: 'string' }, json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } } });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
})();
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}

const out = (json: unknown, text: string) => process.stdout.write(values.json ? `${JSON.stringify(json, null, 2)}\n` : `${text}\n`);
const iso = (d: Date | null) => (d ? d.toISOString() : null);

const url = process.env.DATABASE_URL || 'postgresql://postgres@127.0.0.1:5432/graft';
const db = createDb(url, { max: 2 });
try {
  await prepareDatabase(url, { migrate: process.env.MIGRATE_ON_START !== 'false' });
  const [group, command, ...rest] = positionals;
  switch (`${group} ${command}`) {
    case 'tenants create': {
      const name = rest.join(' ').trim();
      if (!name) throw new UsageError('tenants create needs a name');
      const t = await tenants.createTenant(db, name);
      out({ id: t.id, name: t.name, createdAt: iso(t.createdAt) }, t.id);
      break;
    }
    case 'tenants list': {
      const rows = await tenants.listTenants(db);
      out(
        rows.map((t) => ({ id: t.id, name: t.name, createdAt: iso(t.createdAt), activeKeys: t._count.apiKeys })),
        rows.map((t) => `${t.id}\t${t.name}\t${t._count.apiKeys} active key(s)\tcreated ${iso(t.createdAt)}`).join('\n'),
      );
      break;
    }
    case 'keys create': {
      if (!values.tenant) throw new UsageError('keys create needs --tenant <tenant id>');
      if (!(await tenants.getTenant(db, values.tenant))) throw new NotFound(`No tenant ${values.tenant} (see: npm run admin -- tenants list).`);
      const { row, key } = await tenants.createApiKey(db, values.tenant, values.name ?? '');
      out(
        { id: row.id, tenantId: row.tenantId, name: row.name, prefix: row.prefix, key, createdAt: iso(row.createdAt) },
        `${key}\n\nKey ${row.id} for tenant ${row.tenantId}. This is the only time the key is shown: store it now (graft keeps only its hash).`,
      );
      break;
    }
    case 'keys list': {
      const rows = await tenants.listApiKeys(db, { tenantId: values.tenant });
      out(
        rows.map((k) => ({ id: k.id, tenantId: k.tenantId, name: k.name, prefix: k.prefix, createdAt: iso(k.createdAt), lastUsedAt: iso(k.lastUsedAt), revokedAt: iso(k.revokedAt) })),
        rows
          .map((k) => `${k.id}\t${k.prefix}…\t${k.tenantId}\t${k.name || '-'}\tlast used ${iso(k.lastUsedAt) ?? 'never'}\t${k.revokedAt ? `revoked ${iso(k.revokedAt)}` : 'active'}`)
          .join('\n'),
      );
      break;
    }
    case 'keys revoke': {
      const id = rest[0];
      if (!id) throw new UsageError('keys revoke needs a key id');
      if (!(await tenants.revokeApiKey(db, id))) throw new NotFound(`No API key ${id} (see: npm run admin -- keys list).`);
      out({ id, revoked: true }, `Key ${id} revoked.`);
      break;
    }
    default:
      throw new UsageError(group ? `unknown command: ${positionals.join(' ')}` : 'a command is needed');
  }
} catch (err) {
  const code = err instanceof UsageError ? 2 : err instanceof NotFound ? 3 : 1;
  process.stderr.write(`${(err as Error).message}${code === 2 ? `\n${USAGE}` : ''}\n`);
  process.exitCode = code;
} finally {
  await db.$disconnect();
}
