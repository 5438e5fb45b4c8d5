import type { Knex } from 'knex';

/**
 * The only place that knows which SQL dialect runs. Everything dialect-specific that the rest of
 * the code needs goes through one of these members.
 */
export interface Dialect {
  readonly name: 'sqlite' | 'mysql';
  /** Largest number of bound parameters one statement may carry. */
  readonly maxBindings: number;
  /** Most rows one multi-row INSERT may carry (SQLite compiles one as a compound SELECT). */
  readonly maxInsertRows: number;
  /** Most values one IN list may carry. */
  readonly maxInList: number;
  /**
   * Budget for the values of one statement, in bytes of their text: MySQL sends a statement with
   * its values inlined as one packet, refused above `max_allowed_packet`.
   */
  readonly maxStatementBytes: number;
  /** `col LIKE ? ESCAPE '!'` for contains / starts-with / ends-with, identical SQL on both. */
  like(qb: Knex.QueryBuilder, column: string, value: string, mode: 'co' | 'sw' | 'ew'): Knex.QueryBuilder;
  /** A raw `LIKE` fragment and its binding; `column` is a trusted identifier, never input. */
  likeRaw(column: string, value: string, mode: 'co' | 'sw' | 'ew'): [string, string];
  /** Deadlocks and busy databases are worth one retry. */
  isRetryable(err: unknown): boolean;
}

export function escapeLike(value: string): string {
  return value.replace(/[!%_]/g, (c) => `!${c}`);
}

function likePattern(value: string, mode: 'co' | 'sw' | 'ew'): string {
  const v = escapeLike(value);
  return mode === 'co' ? `%${v}%` : mode === 'sw' ? `${v}%` : `%${v}`;
}

function errCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

const base = {
  likeRaw(column: string, value: string, mode: 'co' | 'sw' | 'ew'): [string, string] {
    return [`${column} LIKE ? ESCAPE '!'`, likePattern(value, mode)];
  },
  like(qb: Knex.QueryBuilder, column: string, value: string, mode: 'co' | 'sw' | 'ew') {
    return qb.whereRaw(`?? LIKE ? ESCAPE '!'`, [column, likePattern(value, mode)]);
  },
};

export const sqliteDialect: Dialect = {
  ...base,
  name: 'sqlite',
  // SQLITE_MAX_VARIABLE_NUMBER is 32766 since 3.32; stay well below.
  maxBindings: 10000,
  // SQLITE_MAX_COMPOUND_SELECT: knex writes a multi-row INSERT as SELECT … UNION ALL SELECT ….
  maxInsertRows: 500,
  maxInList: 500,
  // Values are bound, not written into the statement; only SQLITE_MAX_LENGTH (1e9) per value applies.
  maxStatementBytes: Number.POSITIVE_INFINITY,
  isRetryable: (err) => errCode(err) === 'SQLITE_BUSY',
};

export const mysqlDialect: Dialect = {
  ...base,
  name: 'mysql',
  maxBindings: 10000,
  // No compound limit on MySQL; the same bound keeps one statement's cost alike on both.
  maxInsertRows: 500,
  maxInList: 500,
  // A quarter of MariaDB's default max_allowed_packet (16 MiB): escaping can double a value's text.
  maxStatementBytes: 4 * 1024 * 1024,
  isRetryable: (err) => ['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT'].includes(errCode(err) ?? ''),
};

/** The dialect a knex instance or transaction talks to. */
export function dialectOf(knex: Knex): Dialect {
  const client = (knex as unknown as { client: { config: { client: string } } }).client;
  return client.config.client === 'mysql2' ? mysqlDialect : sqliteDialect;
}

/**
 * Makes a read inside a transaction see the latest committed rows: MySQL's REPEATABLE READ
 * otherwise answers from the snapshot taken at the transaction's first read, so a count made
 * after taking a lock could still be stale. SQLite runs one writer at a time; a plain read is
 * already current there.
 */
export function currentRead(qb: Knex.QueryBuilder): Knex.QueryBuilder {
  return dialectOf(qb as unknown as Knex).name === 'mysql' ? qb.forShare() : qb;
}
