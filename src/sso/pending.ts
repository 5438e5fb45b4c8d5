import { createHash } from 'node:crypto';
import type { CacheItem, CacheProvider } from '@node-saml/node-saml';
import type { Knex } from 'knex';
import { isUniqueViolation } from '../db/errors.js';

/** How long a sign-in may take at the IdP before its request is forgotten. */
export const PENDING_TTL_MS = 10 * 60_000;

/** Removes a tenant's expired sign-in requests and assertion ids, by their expiry index. */
export async function sweepExpired(db: Knex, tenantId: string, now: number): Promise<void> {
  await db('sso_pending').where('tenant_id', tenantId).andWhere('expires_at', '<=', now).delete();
  await db('sso_assertions').where('tenant_id', tenantId).andWhere('expires_at', '<=', now).delete();
}

interface Scope {
  tenantId: string;
  connectionId: string;
}

/** Marks a pending request used; true only for the one request that did so. */
async function consume(db: Knex, s: Scope, id: string, now: number): Promise<boolean> {
  const n = await db('sso_pending')
    .where({ tenant_id: s.tenantId, connection_id: s.connectionId, id })
    .whereNull('consumed_at')
    .andWhere('expires_at', '>', now)
    .update({ consumed_at: now });
  return n === 1;
}

/**
 * node-saml's InResponseTo store, in the database and scoped to one tenant's connection: an
 * AuthnRequest id issued for one connection is unknown to every other. node-saml reads an id,
 * then removes it; here the id is used up by `claim`, an atomic "mark used" that only one
 * request can win.
 */
export class SamlRequestStore implements CacheProvider {
  /** Where the person wanted to go, read with the request id. */
  returnTo: string | null = null;
  /** The AuthnRequest id saved by this store, so the browser that started the sign-in can be bound to it. */
  savedKey: string | null = null;

  constructor(
    private readonly db: Knex,
    private readonly scope: Scope,
    private readonly newReturnTo: string | null = null,
  ) {}

  async saveAsync(key: string, value: string): Promise<CacheItem | null> {
    const now = Date.now();
    this.savedKey = key;
    await this.db('sso_pending').insert({
      tenant_id: this.scope.tenantId,
      connection_id: this.scope.connectionId,
      id: key,
      return_to: this.newReturnTo,
      issued_at: value,
      created_at: now,
      expires_at: now + PENDING_TTL_MS,
    });
    return { value, createdAt: now };
  }

  async getAsync(key: string): Promise<string | null> {
    const row = await this.db('sso_pending')
      .where({ tenant_id: this.scope.tenantId, connection_id: this.scope.connectionId, id: key })
      .whereNull('consumed_at')
      .andWhere('expires_at', '>', Date.now())
      .first();
    if (!row) return null;
    this.returnTo = (row.return_to as string | null) ?? null;
    return String(row.issued_at);
  }

  /**
   * node-saml removes the id on any failure too, so a junk response naming someone's pending
   * request would use it up; the id is therefore used up only by `claim`, after verification.
   */
  async removeAsync(key: string | null): Promise<string | null> {
    return key;
  }

  /** Uses the id up, atomically: true for exactly one caller. */
  async claim(key: string): Promise<boolean> {
    return consume(this.db, this.scope, key, Date.now());
  }

  /** True when the id was issued here and has been used already: a replay, not a stranger. */
  async wasUsed(key: string): Promise<boolean> {
    const row = await this.db('sso_pending')
      .where({ tenant_id: this.scope.tenantId, connection_id: this.scope.connectionId, id: key })
      .whereNotNull('consumed_at')
      .first();
    return Boolean(row);
  }
}

export interface OidcFlow {
  state: string;
  nonce: string;
  codeVerifier: string;
  returnTo: string | null;
}

export async function saveOidcFlow(db: Knex, s: Scope, flowId: string, flow: OidcFlow): Promise<void> {
  const now = Date.now();
  await db('sso_pending').insert({
    tenant_id: s.tenantId,
    connection_id: s.connectionId,
    id: flowId,
    state: flow.state,
    nonce: flow.nonce,
    code_verifier: flow.codeVerifier,
    return_to: flow.returnTo,
    issued_at: new Date(now).toISOString(),
    created_at: now,
    expires_at: now + PENDING_TTL_MS,
  });
}

/** The flow this browser started, used up by this call; undefined when unknown, expired or already used. */
export async function takeOidcFlow(db: Knex, s: Scope, flowId: string): Promise<OidcFlow | undefined> {
  const now = Date.now();
  const row = await db('sso_pending')
    .where({ tenant_id: s.tenantId, connection_id: s.connectionId, id: flowId })
    .first();
  if (!row || !(await consume(db, s, flowId, now))) return undefined;
  return {
    state: String(row.state),
    nonce: String(row.nonce),
    codeVerifier: String(row.code_verifier),
    returnTo: (row.return_to as string | null) ?? null,
  };
}

/**
 * Records an assertion id as used until it expires; false when it was used before, whether the
 * response answered a request or came unasked.
 */
export async function rememberAssertion(db: Knex, s: Scope, assertionId: string, expiresAt: number): Promise<boolean> {
  try {
    await db('sso_assertions').insert({
      tenant_id: s.tenantId,
      connection_id: s.connectionId,
      assertion_hash: createHash('sha256').update(assertionId).digest('hex'),
      expires_at: expiresAt,
    });
    return true;
  } catch (err) {
    if (isUniqueViolation(err)) return false;
    throw err;
  }
}
