import { randomBytes } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import session from 'express-session';
import type { AppDeps } from './deps.js';
import { KnexSessionStore } from './session-store.js';

export const SESSION_COOKIE = 'roster_session';

/**
 * Browser sessions, kept in the database. The cookie is HttpOnly and SameSite=Lax always, and
 * Secure when the request came over TLS (directly or through a trusted proxy), so a plain-HTTP
 * loopback setup still signs in. Requests that carry an API key skip sessions entirely.
 */
export function sessionMiddleware(deps: AppDeps): RequestHandler {
  const { config, logger } = deps;
  if (!config.sessionSecret) {
    logger.warn(
      'SESSION_SECRET is not set: session cookies are signed with a random key of this process, so sessions end at restart and do not work across several processes. Set SESSION_SECRET (32+ characters) in production.',
    );
  }
  const mw = session({
    name: SESSION_COOKIE,
    secret: config.sessionSecret ?? randomBytes(32).toString('hex'),
    store: new KnexSessionStore(deps.db.knex, { idleMs: config.sessionIdleMs, maxMs: config.sessionMaxMs }),
    genid: () => randomBytes(32).toString('base64url'),
    resave: false,
    saveUninitialized: false,
    unset: 'destroy',
    cookie: { httpOnly: true, sameSite: 'lax', secure: 'auto', path: '/', maxAge: config.sessionMaxMs },
  });
  // A management request with an API key needs no session; sign-in routes always get one, so a
  // stray Authorization header on a browser's post to the ACS cannot break a sign-in half-way.
  return (req, res, next) =>
    req.get('authorization') && !req.originalUrl.startsWith('/auth/') ? next() : mw(req, res, next);
}

function promised(fn: (cb: (err?: unknown) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => fn((err) => (err ? reject(err) : resolve())));
}

/** A fresh session for a person who just signed in; any session the browser had is replaced (no fixation). */
export async function startSession(
  req: Request,
  who: { tenantId: string; userId: string; connectionId: string },
): Promise<void> {
  await promised((cb) => req.session.regenerate(cb));
  Object.assign(req.session, { ...who, signedInAt: Date.now(), csrfToken: randomBytes(32).toString('base64url') });
  await promised((cb) => req.session.save(cb));
}

export async function endSession(req: Request, res: Response): Promise<void> {
  if (req.session) await promised((cb) => req.session.destroy(cb));
  res.clearCookie(SESSION_COOKIE, { httpOnly: true, sameSite: 'lax', path: '/' });
}
