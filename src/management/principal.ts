import type { RequestHandler } from 'express';
import type { AppDeps } from '../http/deps.js';
import { effectiveOf, loadSubject } from '../access/subject.js';
import { Forbidden, Unauthenticated } from '../errors.js';
import { endSession } from '../http/session.js';

/**
 * Turns the authenticated key or session into the acting principal. A user's key or session is
 * re-checked on every request against the user's current status and permissions, so a
 * suspension or a permission change takes effect on the next request.
 */
export function authenticatePrincipal(deps: AppDeps): RequestHandler {
  return async (req, res, next) => {
    const auth = req.auth!;
    let userId: string;
    if (auth.kind === 'session') userId = auth.userId;
    else if (auth.token.userId) userId = auth.token.userId;
    else {
      req.principal = { kind: 'admin_key', tokenId: auth.token.id, name: auth.token.name };
      return next();
    }
    const subject = await loadSubject(deps.db.knex, auth.tenant.id, userId);
    if (auth.kind === 'session' && subject?.user.status !== 'active') {
      // A suspended or deleted person's session is over for good, not paused until reactivation.
      await endSession(req, res);
      throw new Unauthenticated(
        'session_ended',
        subject ? `your account is ${subject.user.status}; the session has ended` : 'the session has ended',
      );
    }
    if (!subject) throw new Unauthenticated('invalid_token', 'the token is unknown, revoked or expired');
    if (subject.user.status !== 'active') {
      throw new Forbidden('user_not_active', `the user this key belongs to is ${subject.user.status}`);
    }
    req.principal = { kind: 'user', user: subject.user, effective: effectiveOf(deps.catalogue, subject) };
    req.ctx!.actor = { type: 'user', id: subject.user.id, display: subject.user.email ?? subject.user.userName };
    next();
  };
}
