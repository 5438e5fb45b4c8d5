import { Conflict, InvalidInput, RosterError, Unavailable } from '../errors.js';

const UNIQUE = new Set(['ER_DUP_ENTRY', 'SQLITE_CONSTRAINT_UNIQUE', 'SQLITE_CONSTRAINT_PRIMARYKEY']);
const FOREIGN = new Set(['ER_NO_REFERENCED_ROW_2', 'ER_NO_REFERENCED_ROW', 'SQLITE_CONSTRAINT_FOREIGNKEY']);
const DOWN = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'PROTOCOL_CONNECTION_LOST',
  'ER_CON_COUNT_ERROR',
  'ER_SERVER_SHUTDOWN',
  'ER_ACCESS_DENIED_ERROR',
  'SQLITE_CANTOPEN',
  'SQLITE_BUSY',
  'SQLITE_IOERR',
  'ER_LOCK_DEADLOCK',
  'ER_LOCK_WAIT_TIMEOUT',
]);

function code(err: unknown): string {
  if (typeof err !== 'object' || err === null) return '';
  const c = (err as { code?: unknown }).code;
  return typeof c === 'string' ? c : '';
}

/**
 * Turns a driver error into a domain error, matching driver codes (never messages), keeping the
 * original as `cause`. Errors that are already domain errors pass through.
 */
export function translateDbError(err: unknown): unknown {
  if (err instanceof RosterError) return err;
  const c = code(err);
  if (UNIQUE.has(c)) return new Conflict('duplicate', 'a record with the same unique value exists', { cause: err, scimType: 'uniqueness' });
  if (FOREIGN.has(c)) return new InvalidInput('missing_reference', 'a referenced record does not exist', { cause: err });
  if (DOWN.has(c) || (err instanceof Error && err.name === 'KnexTimeoutError')) {
    return new Unavailable('database_unavailable', 'the database is not available; try again shortly', { cause: err, retryAfter: 1 });
  }
  return err;
}

export function isUniqueViolation(err: unknown): boolean {
  return UNIQUE.has(code(err));
}
