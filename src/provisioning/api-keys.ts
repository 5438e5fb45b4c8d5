import { recordEvent } from '../audit/record.js';
import type { Ctx } from '../context.js';
import type { Db } from '../db/knex.js';
import { requireUser } from '../directory/users.js';
import { issueToken, listTokens, revokeToken, type TokenRecord } from '../tenants/store.js';

/** Commands on admin API keys and SCIM tokens: issue and revoke, each with its audit event. */

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** A key as listed: the hint identifies it, the secret is never stored and never shown again. */
export function presentKey(t: TokenRecord) {
  return {
    id: t.id,
    kind: t.kind,
    name: t.name,
    hint: t.hint,
    userId: t.userId,
    createdAt: iso(t.createdAt)!,
    expiresAt: iso(t.expiresAt),
    lastUsedAt: iso(t.lastUsedAt),
    revokedAt: iso(t.revokedAt),
  };
}

const entity = (t: TokenRecord) => ({ type: 'api_key', id: t.id, name: t.name });

export interface KeyInput {
  kind: 'admin' | 'scim';
  name?: string;
  expiresInMs?: number;
  userId?: string;
}

/** Issues a key (owned by a user of the tenant when userId is given); the answer carries the secret. */
export async function createApiKey(db: Db, ctx: Ctx, b: KeyInput) {
  return db.tx(async (trx) => {
    if (b.userId) await requireUser(trx, ctx.tenantId, b.userId);
    const issued = await issueToken(
      trx,
      ctx.tenantId,
      { kind: b.kind, name: b.name, expiresInMs: b.expiresInMs, userId: b.userId },
      ctx.now.getTime(),
    );
    await recordEvent(trx, ctx, {
      event: 'token.created',
      entity: entity(issued),
      before: null,
      after: { ...presentKey(issued) },
    });
    return issued;
  });
}

/** Revokes a key; revoking one already revoked answers it and records nothing. */
export async function revokeApiKey(db: Db, ctx: Ctx, id: string): Promise<TokenRecord> {
  return db.tx(async (trx) => {
    const before = (await listTokens(trx, ctx.tenantId)).find((k) => k.id === id);
    const revoked = await revokeToken(trx, ctx.tenantId, id, ctx.now.getTime());
    if (before && before.revokedAt === null) {
      await recordEvent(trx, ctx, {
        event: 'token.revoked',
        entity: entity(revoked),
        before: { revokedAt: null },
        after: { revokedAt: iso(revoked.revokedAt) },
      });
    }
    return revoked;
  });
}
