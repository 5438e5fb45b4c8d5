import type { RequestHandler } from 'express';
import type { AppDeps } from '../app.js';
import { effectiveOf, loadSubject } from '../access/subject.js';
import { Forbidden, Unauthenticated } from '../errors.js';

/**
 * Turns the authenticated key into the acting principal. A user-owned key is re-checked on
 * every request against the user's current status and permissions, so a suspension or a
 * permission change takes effect on the next request.
 */
export function authenticatePrincipal(deps: AppDeps): RequestHandler {
  return async (req, _res, next) => {
    const token = req.auth!.token;
    if (!token.userId) {
      req.principal = { kind: 'admin_key', tokenId: token.id, name: token.name };
      return next();
    }
    const subject = await loadSubject(deps.db.knex, token.tenantId, token.userId);
    if (!subject) throw new Unauthenticated('invalid_token', 'the token is unknown, revoked or expired');
    if (subject.user.status !== 'active') {
      throw new Forbidden('user_not_active', `the user this key belongs to is ${subject.user.status}`);
    }
    req.principal = { kind: 'user', user: subject.user, effective: effectiveOf(deps.catalogue, subject) };
    req.ctx!.actor = { type: 'user', id: subject.user.id, display: subject.user.email ?? subject.user.userName };
    next();
  };
}
