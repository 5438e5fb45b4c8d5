import { Conflict, InvalidInput, RosterError, Unavailable } from '../errors.js';

const UNIQUE = new Set(['ER_DUP_ENTRY', 'SQLITE_CONSTRAINT_UNIQUE', 'SQLITE_CONSTRAINT_PRIMARYKEY']);
const FOREIGN = new Set(['ER_NO_REFERENCED_ROW_2', 'ER_NO_REFERENCED_ROW', 'SQLITE_CONSTRAINT_FOREIGNKEY']);
/** The database or the connection to it is away, busy or being restarted: worth a retry later. */
const DOWN = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'ER_CON_COUNT_ERROR',
  'ER_TOO_MANY_USER_CONNECTIONS',
  'ER_SERVER_SHUTDOWN',
  'ER_CONNECTION_KILLED',
  'ER_QUERY_INTERRUPTED',
  'ER_NET_READ_ERROR',
  'ER_NET_READ_INTERRUPTED',
  'ER_NET_ERROR_ON_WRITE',
  'ER_NET_WRITE_INTERRUPTED',
  'ER_ACCESS_DENIED_ERROR',
  'ER_LOCK_DEADLOCK',
  'ER_LOCK_WAIT_TIMEOUT',
  'SQLITE_CANTOPEN',
  'SQLITE_FULL',
]);
/** SQLite reports extended codes (SQLITE_BUSY_SNAPSHOT, SQLITE_IOERR_WRITE, …) of these. */
const DOWN_SQLITE = ['SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_IOERR'];
/**
 * A value that does not fit its column. Input is checked at the edge against every column's
 * length; this is the safety net that keeps a missed check a 400 rather than a 500.
 */
const TOO_LARGE = new Set([
  'ER_DATA_TOO_LONG',
  'ER_TRUNCATED_WRONG_VALUE',
  'ER_TRUNCATED_WRONG_VALUE_FOR_FIELD',
  'WARN_DATA_TRUNCATED',
  'ER_WARN_DATA_OUT_OF_RANGE',
  'SQLITE_TOOBIG',
]);

function code(err: unknown): string {
  if (typeof err !== 'object' || err === null) return '';
  const c = (err as { code?: unknown }).code;
  return typeof c === 'string' ? c : '';
}

/**
 * Whether the error means the connection or the database is unusable rather than the statement
 * wrong. mysql2 marks every such error `fatal`, including the "Can't add new command when
 * connection is in closed state" that a ROLLBACK or COMMIT meets after the connection dropped
 * in the middle of a transaction.
 */
function isConnectionFailure(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const c = code(err);
  return (
    DOWN.has(c) ||
    DOWN_SQLITE.some((p) => c === p || c.startsWith(`${p}_`)) ||
    (err as { fatal?: unknown }).fatal === true ||
    err.name === 'KnexTimeoutError'
  );
}

/** The column MySQL names in "Data too long for column 'x' at row 1"; a name, never a value. */
function columnOf(err: unknown): string | undefined {
  const m = /\bcolumn [`']?(?:[\w]+[`']?\.[`']?)*([\w]+)[`']?/.exec(
    String((err as { sqlMessage?: unknown }).sqlMessage ?? ''),
  );
  return m?.[1];
}

/**
 * Turns a driver error into a domain error, matching driver codes (never messages), keeping the
 * original as `cause`. Errors that are already domain errors pass through.
 */
export function translateDbError(err: unknown): unknown {
  if (err instanceof RosterError) return err;
  const c = code(err);
  if (UNIQUE.has(c))
    return new Conflict('duplicate', 'a record with the same unique value exists', {
      cause: err,
      scimType: 'uniqueness',
    });
  if (FOREIGN.has(c))
    return new InvalidInput('missing_reference', 'a referenced record does not exist', { cause: err });
  if (TOO_LARGE.has(c)) {
    const column = columnOf(err);
    return new InvalidInput('value_too_large', `a value is too long or out of range${column ? ` for ${column}` : ''}`, {
      cause: err,
      scimType: 'invalidValue',
      ...(column ? { fields: [{ path: column, message: 'is too long or out of range' }] } : {}),
    });
  }
  if (isConnectionFailure(err)) {
    return new Unavailable('database_unavailable', 'the database is not available; try again shortly', {
      cause: err,
      retryAfter: 1,
    });
  }
  return err;
}

export function isUniqueViolation(err: unknown): boolean {
  return UNIQUE.has(code(err));
}

/** Quoted literals in a driver message, except the names after column/key/table. */
const QUOTED_VALUE = /(?<!\b(?:column|key|table|database|index|constraint) )'(?:[^'\\]|\\.|'')*'/g;

/**
 * Strips bound values from a failed query's error before anything can log it: knex is told not
 * to inline them (`compileSqlOnError: false`), mysql2 keeps the formatted statement in `sql` and
 * quotes the offending value in its message ("Duplicate entry 'a@b.example' for key …"). What
 * stays is the statement with placeholders, the driver code and the names of columns and keys.
 */
export function scrubBoundValues(err: unknown, sql?: string): void {
  if (typeof err !== 'object' || err === null) return;
  const e = err as { message?: unknown; sql?: unknown; sqlMessage?: unknown };
  if (typeof e.sql === 'string') e.sql = sql ?? '[statement withheld]';
  if (typeof e.sqlMessage === 'string') e.sqlMessage = e.sqlMessage.replace(QUOTED_VALUE, "'…'");
  if (typeof e.message === 'string') {
    const prefix = sql !== undefined && e.message.startsWith(`${sql} - `) ? `${sql} - ` : '';
    e.message = prefix + e.message.slice(prefix.length).replace(QUOTED_VALUE, "'…'");
  }
}
