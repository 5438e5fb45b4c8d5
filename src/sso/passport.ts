import type { Request, Response } from 'express';
import passport from 'passport';

/**
 * Roster's own authenticator, apart from passport's global one. It keeps no sessions: a
 * strategy only verifies and hands over who signed in, and Roster starts its own session after.
 */
export const authenticator = new passport.Authenticator();

/** What a strategy decided for one request. */
export type Step =
  | { kind: 'redirect'; url: string; send: () => void }
  | { kind: 'success'; user: unknown }
  | { kind: 'fail'; info: unknown };

interface HeldRedirect {
  onRedirect: (url: string, send: () => void) => void;
}

/**
 * passport sends a strategy's redirect to the IdP itself; a sign-in start must first record what
 * the answer will be checked against and bind it to the browser. A strategy calls this at the
 * top of `authenticate`, so passport's redirect is sent only when the caller says.
 */
export function holdRedirect(created: object, options: unknown): void {
  // passport sets `redirect` on the strategy it creates for each request.
  const strategy = created as { redirect(url: string, status?: number): void };
  const send = strategy.redirect;
  strategy.redirect = (url, status) =>
    (options as HeldRedirect).onRedirect(url, () => send.call(strategy, url, status));
}

/**
 * `passport.authenticate(strategy, {session: false}, callback)` as a promise of the strategy's
 * decision. A strategy is named, or an instance: passport sets its callbacks on an instance it
 * is given, so each request gets its own object made from it.
 */
export function authenticate(
  strategy: string | passport.Strategy,
  req: Request,
  res: Response,
  options: object = {},
): Promise<Step> {
  const name = typeof strategy === 'string' ? strategy : strategy.name;
  const layer = typeof strategy === 'string' ? strategy : (Object.create(strategy) as passport.Strategy);
  return new Promise((resolve, reject) => {
    const held: HeldRedirect = { onRedirect: (url, send) => resolve({ kind: 'redirect', url, send }) };
    const decided = (err: unknown, user: unknown, info: unknown) => {
      if (err) reject(err);
      else resolve(user ? { kind: 'success', user } : { kind: 'fail', info });
    };
    const passed = (err?: unknown) => reject(err ?? new Error(`the ${name} strategy made no decision`));
    authenticator.authenticate(layer, { ...options, ...held, session: false }, decided)(req, res, passed);
  });
}
