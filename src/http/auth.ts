import { timingSafeEqual } from 'node:crypto';
import type { Request, RequestHandler } from 'express';
import type { Knex } from 'knex';
import { Forbidden, NotFound, Unauthenticated } from '../errors.js';
import { getTenant, resolveToken } from '../tenants/store.js';
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
    if (!header)
      throw new Unauthenticated(
        'missing_token',
        accept === 'admin'
          ? 'an Authorization: Bearer token or a session is required'
          : 'an Authorization: Bearer token is required',
      );
    const m = BEARER.exec(header);
    if (!m) throw new Unauthenticated('malformed_token', 'the Authorization header must be "Bearer <token>"');
    const resolved = await resolveToken(db, m[1]!);
    if (!resolved) throw new Unauthenticated('invalid_token', 'the token is unknown, revoked or expired');
    if (resolved.token.kind !== accept) {
      throw new Forbidden(
        'wrong_token_kind',
        accept === 'scim'
          ? 'this endpoint takes a SCIM token, not an admin API key'
          : 'this endpoint takes an admin API key, not a SCIM token',
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

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * A browser's own writes carry the CSRF token it read from GET /auth/csrf; a page on another
 * site can neither read the token nor, in a modern browser, hide that it is cross-site.
 */
export function checkCsrf(req: Request, publicOrigin: string, expected: string): void {
  if (SAFE_METHODS.has(req.method)) return;
  const origin = req.get('origin');
  if ((origin !== undefined && origin !== publicOrigin) || req.get('sec-fetch-site') === 'cross-site') {
    throw new Forbidden('cross_site_request', `requests from ${origin ?? 'another site'} may not use this session`);
  }
  const token = req.get('x-csrf-token');
  if (!token)
    throw new Forbidden('csrf_token_missing', 'a write with a session needs the X-CSRF-Token header (GET /auth/csrf)');
  if (!sameSecret(token, expected))
    throw new Forbidden('csrf_token_invalid', 'the X-CSRF-Token header does not match this session');
}

/**
 * The management API's callers: an admin API key (`Authorization: Bearer`), or a person's
 * session cookie from SSO sign-in. A key wins when both are present, and needs no CSRF token.
 */
export function keyOrSessionAuth(db: Knex, publicBaseUrl: string): RequestHandler {
  const bearer = bearerAuth(db, 'admin');
  const publicOrigin = new URL(publicBaseUrl).origin;
  return async (req, res, next) => {
    const s = req.session;
    if (req.get('authorization') || !s?.userId || !s.tenantId || !s.csrfToken) return bearer(req, res, next);
    checkCsrf(req, publicOrigin, s.csrfToken);
    let tenant;
    try {
      tenant = await getTenant(db, s.tenantId);
    } catch (err) {
      if (err instanceof NotFound) throw new Unauthenticated('session_ended', 'the session has ended');
      throw err;
    }
    req.auth = { kind: 'session', tenant, userId: s.userId };
    req.ctx = { tenantId: tenant.id, actor: { type: 'user', id: s.userId }, requestId: req.id, now: new Date() };
    next();
  };
}
