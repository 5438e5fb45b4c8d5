import type { Knex } from 'knex';

/**
 * The only place that knows which SQL dialect runs. Everything dialect-specific that the rest of
 * the code needs goes through one of these members.
 */
export interface Dialect {
  readonly name: 'sqlite' | 'mysql';
  /** Largest number of bound parameters one statement may carry. */
  readonly maxBindings: number;
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
  isRetryable: (err) => errCode(err) === 'SQLITE_BUSY',
};

export const mysqlDialect: Dialect = {
  ...base,
  name: 'mysql',
  maxBindings: 10000,
  isRetryable: (err) => ['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT'].includes(errCode(err) ?? ''),
};

/**
 * Makes a read inside a transaction see the latest committed rows: MySQL's REPEATABLE READ
 * otherwise answers from the snapshot taken at the transaction's first read, so a count made
 * after taking a lock could still be stale. SQLite runs one writer at a time; a plain read is
 * already current there.
 */
export function currentRead(qb: Knex.QueryBuilder): Knex.QueryBuilder {
  const client = (qb as unknown as { client: { config: { client: string } } }).client;
  return client.config.client === 'mysql2' ? qb.forShare() : qb;
}
