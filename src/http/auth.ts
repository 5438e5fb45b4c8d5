import type { RequestHandler } from 'express';
import type { Knex } from 'knex';
import { Forbidden, Unauthenticated } from '../errors.js';
import { resolveToken } from '../tenants/store.js';
import type { TokenKind } from '../tenants/tokens.js';

const BEARER = /^Bearer +([A-Za-z0-9._~+/=-]+) *$/i;

/**
 * Resolves `Authorization: Bearer <token>` to exactly one tenant and token kind and builds the
 * request context from it. Unknown, revoked and expired tokens are indistinguishable (401); a
 * live token of the other kind is 403.
 */
export function bearerAuth(db: Knex, accept: TokenKind): RequestHandler {
  return async (req, _res, next) => {
    const header = req.get('authorization');
    if (!header) throw new Unauthenticated('missing_token', 'an Authorization: Bearer token is required');
    const m = BEARER.exec(header);
    if (!m) throw new Unauthenticated('malformed_token', 'the Authorization header must be "Bearer <token>"');
    const resolved = await resolveToken(db, m[1]!);
    if (!resolved) throw new Unauthenticated('invalid_token', 'the token is unknown, revoked or expired');
    if (resolved.token.kind !== accept) {
      throw new Forbidden(
        'wrong_token_kind',
        accept === 'scim' ? 'this endpoint takes a SCIM token, not an admin API key' : 'this endpoint takes an admin API key, not a SCIM token',
      );
    }
    req.auth = { kind: resolved.token.kind, token: resolved.token, tenant: resolved.tenant };
    req.ctx = {
      tenantId: resolved.tenant.id,
      actor: {
        type: accept === 'scim' ? 'scim_token' : 'api_key',
        id: resolved.token.id,
        display: resolved.token.name,
      },
      requestId: req.id,
      now: new Date(),
    };
    next();
  };
}
