import type { Knex } from 'knex';
import { Conflict, InvalidInput, NotFound } from '../errors.js';
import { newId } from '../db/ids.js';
import { isUniqueViolation } from '../db/errors.js';
import { toBool, toMs } from '../db/rows.js';
import { hashesEqual, hashToken, mintToken, type TokenKind } from './tokens.js';

export interface Tenant {
  id: string;
  slug: string;
  name: string;
  userLimit: number | null;
  timeZone: string;
  jitProvisioning: boolean;
  rateLimitDisabled: boolean;
  createdAt: number;
}

export interface TokenRecord {
  id: string;
  tenantId: string;
  kind: TokenKind;
  name: string;
  hint: string;
  createdAt: number;
  expiresAt: number | null;
  lastUsedAt: number | null;
  revokedAt: number | null;
  /** An admin key owned by a user acts as that user, with that user's permissions. */
  userId: string | null;
}

export interface IssuedToken extends TokenRecord {
  /** The secret, shown once and never stored. */
  token: string;
}

const SLUG = /^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$/;

export function isValidSlug(slug: string): boolean {
  return SLUG.test(slug);
}

type Row = Record<string, unknown>;

export function tenantFromRow(r: Row): Tenant {
  return {
    id: String(r.id),
    slug: String(r.slug),
    name: String(r.name),
    userLimit: r.user_limit === null || r.user_limit === undefined ? null : Number(r.user_limit),
    timeZone: String(r.time_zone),
    jitProvisioning: toBool(r.jit_provisioning),
    rateLimitDisabled: toBool(r.rate_limit_disabled),
    createdAt: toMs(r.created_at)!,
  };
}

function tokenFromRow(r: Row): TokenRecord {
  return {
    id: String(r.id),
    tenantId: String(r.tenant_id),
    kind: r.kind as TokenKind,
    name: String(r.name),
    hint: String(r.hint),
    createdAt: toMs(r.created_at)!,
    expiresAt: toMs(r.expires_at),
    lastUsedAt: toMs(r.last_used_at),
    revokedAt: toMs(r.revoked_at),
    userId: (r.user_id as string | null | undefined) ?? null,
  };
}

export interface NewTenant {
  slug: string;
  name?: string;
  userLimit?: number | null;
}

/** The tenant row alone; provisioning/tenants.ts creates a tenant with what it starts with. */
export async function insertTenant(db: Knex, input: NewTenant, now = Date.now()): Promise<Tenant> {
  if (!isValidSlug(input.slug)) {
    throw new InvalidInput(
      'invalid_slug',
      `tenant slug "${input.slug}" must be 1-64 lowercase letters, digits or dashes`,
    );
  }
  const row = {
    id: newId(),
    slug: input.slug,
    name: input.name ?? input.slug,
    user_limit: input.userLimit ?? null,
    time_zone: 'UTC',
    jit_provisioning: false,
    rate_limit_disabled: false,
    created_at: now,
  };
  try {
    await db('tenants').insert(row);
  } catch (err) {
    if (isUniqueViolation(err)) throw new Conflict('slug_taken', `a tenant with slug "${input.slug}" already exists`);
    throw err;
  }
  return tenantFromRow(row);
}

/**
 * Sets a tenant's user limit (null: none). The limit is the operator's, a plan limit (seed 003:
 * "upgrade your plan to add more users"): only the CLI sets it, never the tenant's own admins.
 * A limit below the seats in use blocks new users until enough are deleted.
 */
export async function setUserLimit(
  trx: Knex,
  slug: string,
  userLimit: number | null,
): Promise<{ before: Tenant; after: Tenant }> {
  const before = await getTenantBySlug(trx, slug);
  await trx('tenants').where({ id: before.id }).update({ user_limit: userLimit });
  return { before, after: { ...before, userLimit } };
}

export async function listTenants(db: Knex): Promise<Tenant[]> {
  return (await db('tenants').select().orderBy('slug')).map(tenantFromRow);
}

export async function getTenant(db: Knex, id: string): Promise<Tenant> {
  const row = await db('tenants').where({ id }).first();
  if (!row) throw new NotFound('tenant_not_found', 'tenant not found');
  return tenantFromRow(row);
}

export async function getTenantBySlug(db: Knex, slug: string): Promise<Tenant> {
  const row = await db('tenants').where({ slug }).first();
  if (!row) throw new NotFound('tenant_not_found', `no tenant with slug "${slug}"`);
  return tenantFromRow(row);
}

export async function issueToken(
  db: Knex,
  tenantId: string,
  input: { kind: TokenKind; name?: string; expiresInMs?: number; userId?: string | null },
  now = Date.now(),
): Promise<IssuedToken> {
  const minted = mintToken(input.kind);
  const record: TokenRecord = {
    id: newId(),
    tenantId,
    kind: input.kind,
    name: input.name ?? (input.kind === 'scim' ? 'SCIM token' : 'Admin API key'),
    hint: minted.hint,
    createdAt: now,
    expiresAt: input.expiresInMs ? now + input.expiresInMs : null,
    lastUsedAt: null,
    revokedAt: null,
    userId: input.userId ?? null,
  };
  await db('api_tokens').insert({
    user_id: record.userId,
    tenant_id: tenantId,
    id: record.id,
    kind: record.kind,
    name: record.name,
    token_hash: minted.hash,
    hint: record.hint,
    created_at: record.createdAt,
    expires_at: record.expiresAt,
  });
  return { ...record, token: minted.token };
}

export async function listTokens(db: Knex, tenantId: string): Promise<TokenRecord[]> {
  return (await db('api_tokens').where({ tenant_id: tenantId }).orderBy('created_at').orderBy('id')).map(tokenFromRow);
}

export async function revokeToken(db: Knex, tenantId: string, tokenId: string, now = Date.now()): Promise<TokenRecord> {
  const row = await db('api_tokens').where({ tenant_id: tenantId, id: tokenId }).first();
  if (!row) throw new NotFound('token_not_found', `no token ${tokenId} in this tenant`);
  if (row.revoked_at === null) {
    await db('api_tokens').where({ tenant_id: tenantId, id: tokenId }).update({ revoked_at: now });
    row.revoked_at = now;
  }
  return tokenFromRow(row);
}

/** Recording every use would turn each read into a write; a minute's precision is enough. */
const LAST_USED_PRECISION_MS = 60_000;

export type ResolvedToken = { token: TokenRecord; tenant: Tenant };

/**
 * Finds the live token for a presented secret: unknown, revoked and expired all answer
 * undefined, so callers cannot tell them apart from outside.
 */
export async function resolveToken(db: Knex, presented: string, now = Date.now()): Promise<ResolvedToken | undefined> {
  const hash = hashToken(presented);
  const row = await db('api_tokens as k')
    .join('tenants as t', 't.id', 'k.tenant_id')
    .where('k.token_hash', hash)
    .select(
      'k.*',
      't.slug as t_slug',
      't.name as t_name',
      't.user_limit as t_user_limit',
      't.time_zone as t_time_zone',
      't.jit_provisioning as t_jit_provisioning',
      't.rate_limit_disabled as t_rate_limit_disabled',
      't.created_at as t_created_at',
    )
    .first();
  if (!row || !hashesEqual(String(row.token_hash), hash)) return undefined;
  const token = tokenFromRow(row);
  if (token.revokedAt !== null || (token.expiresAt !== null && token.expiresAt <= now)) return undefined;
  if (token.lastUsedAt === null || now - token.lastUsedAt >= LAST_USED_PRECISION_MS) {
    await db('api_tokens').where({ tenant_id: token.tenantId, id: token.id }).update({ last_used_at: now });
    token.lastUsedAt = now;
  }
  const tenant = tenantFromRow({
    id: row.tenant_id,
    slug: row.t_slug,
    name: row.t_name,
    user_limit: row.t_user_limit,
    time_zone: row.t_time_zone,
    jit_provisioning: row.t_jit_provisioning,
    rate_limit_disabled: row.t_rate_limit_disabled,
    created_at: row.t_created_at,
  });
  return { token, tenant };
}
