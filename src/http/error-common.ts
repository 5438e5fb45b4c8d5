import type { Request } from 'express';
import { RosterError, Unavailable } from '../errors.js';
import { translateDbError } from '../db/errors.js';

/**
 * Normalises anything thrown into a RosterError, or undefined for an unexpected failure that
 * must be hidden behind a 500. Database driver errors are translated here, once.
 */
export function toRosterError(err: unknown): RosterError | undefined {
  const translated = translateDbError(err);
  return translated instanceof RosterError ? translated : undefined;
}

export function logFailure(req: Request, err: unknown, known: RosterError | undefined): void {
  if (!known) req.log.error({ err }, 'unhandled error');
  else if (known instanceof Unavailable)
    req.log.warn({ err: known.extra.cause ?? known, code: known.code }, 'unavailable');
  else if (known.status >= 500) req.log.error({ err: known }, known.code);
}

/** The headers an error carries in either protocol: Retry-After, WWW-Authenticate, Allow. */
export function setErrorHeaders(res: { setHeader(n: string, v: string): void }, known: RosterError): void {
  if (known.extra.retryAfter !== undefined) res.setHeader('Retry-After', String(known.extra.retryAfter));
  if (known.status === 401) res.setHeader('WWW-Authenticate', 'Bearer realm="roster"');
  const allow = known.extra.details?.allow;
  if (typeof allow === 'string') res.setHeader('Allow', allow);
}
