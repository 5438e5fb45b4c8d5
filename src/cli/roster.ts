import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config/load.js';
import { openDb, type Db } from '../db/knex.js';
import { migrateLatest } from '../db/migrate.js';
import { recordEvent } from '../audit/record.js';
import { NotFound, RosterError } from '../errors.js';
import { getOutboxMail, listOutbox, type OutboxEntry } from '../mail/outbox.js';
import { createTenant } from '../provisioning/tenants.js';
import {
  getTenant,
  getTenantBySlug,
  isValidSlug,
  issueToken,
  listTenants,
  listTokens,
  revokeToken,
  setUserLimit,
} from '../tenants/store.js';
import { TOKEN_KINDS, type TokenKind } from '../tenants/tokens.js';
import { parseDuration } from '../text/duration.js';

const USAGE = `usage:
  roster migrate
  roster tenant create <slug> [--name N] [--user-limit N] [--json]
  roster tenant update <slug> --user-limit N|none [--json]
  roster tenant list [--json]
  roster token create <slug> --kind scim|admin [--name N] [--expires-in 90d] [--json]
  roster token list <slug> [--json]
  roster token revoke <slug> <tokenId>
  roster outbox list [--tenant <slug>] [--limit N] [--json]
  roster outbox show <mailId> [--tenant <slug>] [--json]

DATABASE_URL selects the database (default sqlite:./data/roster.sqlite).`;

class UsageError extends Error {}

export interface Io {
  out(text: string): void;
  err(text: string): void;
}

type Parsed = ReturnType<typeof parse>;

function parse(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        name: { type: 'string' },
        'user-limit': { type: 'string' },
        json: { type: 'boolean', default: false },
        kind: { type: 'string' },
        'expires-in': { type: 'string' },
        tenant: { type: 'string' },
        limit: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function positionals(p: Parsed, count: number, what: string): string[] {
  const rest = p.positionals.slice(2);
  if (rest.length !== count)
    throw new UsageError(`${what} takes ${count} argument${count === 1 ? '' : 's'}, got ${rest.length}`);
  return rest;
}

function slugArg(slug: string): string {
  if (!isValidSlug(slug))
    throw new UsageError(`"${slug}" is not a valid tenant slug (lowercase letters, digits and dashes, 1-64)`);
  return slug;
}

function userLimitArg(text: string): number | null {
  if (text === 'none') return null;
  if (!/^\d{1,9}$/.test(text)) throw new UsageError(`--user-limit must be a whole number or none, got "${text}"`);
  return Number(text);
}

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

function mailState(m: OutboxEntry): string {
  if (m.state === 'sent') return `sent ${iso(m.sentAt)}`;
  if (m.state === 'failed') return `failed after ${m.attempts} attempts`;
  return m.attempts ? `pending (${m.attempts} failed attempt${m.attempts === 1 ? '' : 's'})` : 'pending';
}

function mailJson(m: OutboxEntry, slug: string | undefined) {
  return {
    id: m.id,
    tenant: slug ?? m.tenantId,
    kind: m.kind,
    to: m.to,
    subject: m.subject,
    state: m.state,
    attempts: m.attempts,
    lastError: m.lastError,
    createdAt: iso(m.createdAt),
    sentAt: iso(m.sentAt),
    lastAttemptAt: iso(m.lastAttemptAt),
  };
}

async function run(p: Parsed, db: Db, io: Io): Promise<void> {
  const [group, verb] = p.positionals;
  const v = p.values;
  const say = (obj: unknown, text: string) => io.out(v.json ? `${JSON.stringify(obj)}\n` : `${text}\n`);

  if (group === 'migrate' && verb === undefined) {
    const applied = await migrateLatest(db.knex);
    io.err(applied.length ? `applied: ${applied.join(', ')}\n` : 'already up to date\n');
    return;
  }
  await migrateLatest(db.knex);

  if (group === 'tenant' && verb === 'create') {
    const [slug] = positionals(p, 1, 'tenant create');
    const userLimit = v['user-limit'] === undefined ? null : userLimitArg(v['user-limit']);
    const result = await db.tx(async (trx) => {
      const tenant = await createTenant(trx, { slug: slugArg(slug!), name: v.name, userLimit });
      const scim = await issueToken(trx, tenant.id, { kind: 'scim' });
      const admin = await issueToken(trx, tenant.id, { kind: 'admin' });
      return { tenant, scimToken: scim.token, adminApiKey: admin.token };
    });
    say(
      {
        tenant: { id: result.tenant.id, slug: result.tenant.slug, name: result.tenant.name, userLimit },
        scimToken: result.scimToken,
        adminApiKey: result.adminApiKey,
      },
      `created tenant ${result.tenant.slug} (${result.tenant.id})\nSCIM token:    ${result.scimToken}\nadmin API key: ${result.adminApiKey}\nThese secrets are shown only now.`,
    );
    return;
  }
  if (group === 'tenant' && verb === 'update') {
    const [slug] = positionals(p, 1, 'tenant update');
    if (v['user-limit'] === undefined) throw new UsageError('tenant update needs --user-limit N or none');
    const userLimit = userLimitArg(v['user-limit']);
    const { before, after } = await db.tx(async (trx) => {
      const changed = await setUserLimit(trx, slugArg(slug!), userLimit);
      if (changed.before.userLimit !== userLimit) {
        // The tenant's admins see in their audit log who changed their plan's limit.
        const ctx = {
          tenantId: changed.after.id,
          actor: { type: 'system' as const, id: null, display: 'operator (roster CLI)' },
          requestId: 'cli',
          now: new Date(),
        };
        await recordEvent(trx, ctx, {
          event: 'tenant.updated',
          entity: { type: 'tenant', id: changed.after.id, name: changed.after.name },
          before: { userLimit: changed.before.userLimit },
          after: { userLimit },
        });
      }
      return changed;
    });
    say(
      { tenant: { id: after.id, slug: after.slug, name: after.name, userLimit }, previousUserLimit: before.userLimit },
      `tenant ${after.slug}: user limit ${before.userLimit ?? 'none'} → ${userLimit ?? 'none'}`,
    );
    return;
  }
  if (group === 'tenant' && verb === 'list') {
    positionals(p, 0, 'tenant list');
    const tenants = await listTenants(db.knex);
    say(
      tenants.map((t) => ({
        id: t.id,
        slug: t.slug,
        name: t.name,
        userLimit: t.userLimit,
        createdAt: iso(t.createdAt),
      })),
      tenants.map((t) => `${t.slug}\t${t.id}\t${t.name}\tlimit=${t.userLimit ?? 'none'}`).join('\n') || '(no tenants)',
    );
    return;
  }
  if (group === 'token' && verb === 'create') {
    const [slug] = positionals(p, 1, 'token create');
    const kind = v.kind as TokenKind | undefined;
    if (!kind || !TOKEN_KINDS.includes(kind)) throw new UsageError('--kind must be scim or admin');
    let expiresInMs: number | undefined;
    if (v['expires-in'] !== undefined) {
      expiresInMs = parseDuration(v['expires-in']);
      if (expiresInMs === undefined)
        throw new UsageError(
          `--expires-in must be a number with a unit s, m, h or d (e.g. 90d), got "${v['expires-in']}"`,
        );
    }
    const tenant = await getTenantBySlug(db.knex, slugArg(slug!));
    const t = await issueToken(db.knex, tenant.id, { kind, name: v.name, expiresInMs });
    say(
      { id: t.id, token: t.token, kind: t.kind, name: t.name, expiresAt: iso(t.expiresAt) },
      `${t.kind} token ${t.id} for ${tenant.slug}${t.expiresAt ? ` (expires ${iso(t.expiresAt)})` : ''}:\n${t.token}\nShown only now.`,
    );
    return;
  }
  if (group === 'token' && verb === 'list') {
    const [slug] = positionals(p, 1, 'token list');
    const tenant = await getTenantBySlug(db.knex, slugArg(slug!));
    const tokens = await listTokens(db.knex, tenant.id);
    const state = (t: (typeof tokens)[number]) =>
      t.revokedAt ? 'revoked' : t.expiresAt !== null && t.expiresAt <= Date.now() ? 'expired' : 'active';
    say(
      tokens.map((t) => ({
        id: t.id,
        kind: t.kind,
        name: t.name,
        hint: t.hint,
        state: state(t),
        createdAt: iso(t.createdAt),
        expiresAt: iso(t.expiresAt),
        lastUsedAt: iso(t.lastUsedAt),
        revokedAt: iso(t.revokedAt),
      })),
      tokens
        .map((t) => `${t.id}\t${t.kind}\t${state(t)}\t${t.hint}\t${t.name}\tlast used ${iso(t.lastUsedAt) ?? 'never'}`)
        .join('\n') || '(no tokens)',
    );
    return;
  }
  if (group === 'token' && verb === 'revoke') {
    const [slug, tokenId] = positionals(p, 2, 'token revoke');
    const tenant = await getTenantBySlug(db.knex, slugArg(slug!));
    const t = await revokeToken(db.knex, tenant.id, tokenId!);
    say({ id: t.id, revokedAt: iso(t.revokedAt) }, `revoked ${t.id}`);
    return;
  }
  if (group === 'outbox' && verb === 'list') {
    positionals(p, 0, 'outbox list');
    let limit = 20;
    if (v.limit !== undefined) {
      if (!/^\d{1,4}$/.test(v.limit) || Number(v.limit) < 1 || Number(v.limit) > 1000) {
        throw new UsageError(`--limit must be a whole number from 1 to 1000, got "${v.limit}"`);
      }
      limit = Number(v.limit);
    }
    const tenant = v.tenant === undefined ? undefined : await getTenantBySlug(db.knex, slugArg(v.tenant));
    const mails = await listOutbox(db.knex, { tenantId: tenant?.id, limit });
    const slugs = new Map((await listTenants(db.knex)).map((t) => [t.id, t.slug]));
    say(
      mails.map((m) => mailJson(m, slugs.get(m.tenantId))),
      mails
        .map((m) =>
          [
            m.id,
            iso(m.createdAt),
            slugs.get(m.tenantId) ?? m.tenantId,
            m.to,
            m.subject,
            mailState(m),
            m.lastError ? `last error: ${m.lastError}` : '',
          ]
            .join('\t')
            .trimEnd(),
        )
        .join('\n') || '(no mails)',
    );
    return;
  }
  if (group === 'outbox' && verb === 'show') {
    const [id] = positionals(p, 1, 'outbox show');
    const tenant = v.tenant === undefined ? undefined : await getTenantBySlug(db.knex, slugArg(v.tenant));
    const m = await getOutboxMail(db.knex, id!, tenant?.id);
    if (!m)
      throw new NotFound('mail_not_found', `no mail with id "${id}"${tenant ? ` in tenant "${tenant.slug}"` : ''}`);
    const slug = tenant?.slug ?? (await getTenant(db.knex, m.tenantId)).slug;
    const head = [
      `To: ${m.to}`,
      `Subject: ${m.subject}`,
      `Kind: ${m.kind}`,
      `Tenant: ${slug}`,
      `Created: ${iso(m.createdAt)}`,
      `State: ${mailState(m)}`,
      ...(m.lastError ? [`Last error: ${m.lastError}`] : []),
    ];
    say({ ...mailJson(m, slug), text: m.text, html: m.html }, `${head.join('\n')}\n\n${m.text.replace(/\n+$/, '')}`);
    return;
  }
  throw new UsageError(group ? `unknown command: ${p.positionals.join(' ')}` : 'no command given');
}

/** Runs the CLI and answers its exit code: 0 done, 1 refused (e.g. slug taken), 2 bad usage. */
export async function cli(argv: string[], env: Record<string, string | undefined>, io: Io): Promise<number> {
  let p: Parsed;
  try {
    p = parse(argv);
    if (p.values.help) {
      io.out(`${USAGE}\n`);
      return 0;
    }
  } catch (err) {
    io.err(`roster: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  let db: Db | undefined;
  try {
    const config = loadConfig({ ...env, LOG_LEVEL: env.LOG_LEVEL });
    db = openDb(config.databaseUrl, { poolMax: 2, acquireTimeoutMs: config.dbAcquireTimeoutMs });
    await run(p, db, io);
    return 0;
  } catch (err) {
    if (err instanceof UsageError || err instanceof ConfigError) {
      io.err(`roster: ${err.message}\n${err instanceof UsageError ? `${USAGE}\n` : ''}`);
      return 2;
    }
    if (err instanceof RosterError) {
      io.err(`roster: ${err.message}\n`);
      return 1;
    }
    io.err(`roster: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  } finally {
    await db?.close();
  }
}
