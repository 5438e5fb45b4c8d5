import fs from 'node:fs';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import { LRUCache } from 'lru-cache';
import { mysqlDialect, sqliteDialect, type Dialect } from './dialect.js';
import { scrubBoundValues, translateDbError } from './errors.js';

export interface DbOptions {
  poolMax?: number;
  acquireTimeoutMs?: number;
  /** Where knex's own warnings go (pool errors while the database is away); default stderr. */
  logger?: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
}

export interface Db {
  readonly knex: Knex;
  readonly dialect: Dialect;
  /** Runs `fn` in one transaction; a deadlock or busy database is retried once. */
  tx<T>(fn: (trx: Knex.Transaction) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface SqliteConnection {
  pragma(s: string): unknown;
  prepare(sql: string): unknown;
}

/** Bounds of the prepared-statement cache: entries, and the summed length of their SQL text. */
export const STATEMENT_CACHE = { entries: 500, bytes: 2 * 1024 * 1024 };

/**
 * knex prepares every statement anew, which is most of the cost of a small query on SQLite.
 * One connection runs one statement at a time to completion (better-sqlite3 is synchronous and
 * knex reads results with all()/run()), so a prepared statement can be reused safely; SQLite
 * re-prepares it by itself after a schema change. Bounded by count and by the size of the SQL
 * (a 500-row INSERT is ~100 kB of text, and its prepared form grows with it), least recently
 * used dropped first; a statement larger than a tenth of the budget is not kept at all.
 */
export function cachePreparedStatements(conn: SqliteConnection, limits = STATEMENT_CACHE): void {
  const prepare = conn.prepare.bind(conn);
  const cache = new LRUCache<string, object>({
    max: limits.entries,
    maxSize: limits.bytes,
    maxEntrySize: Math.floor(limits.bytes / 10),
    sizeCalculation: (_stmt, sql) => sql.length,
  });
  conn.prepare = (sql: string) => {
    let stmt = cache.get(sql);
    if (stmt === undefined) {
      stmt = prepare(sql) as object;
      cache.set(sql, stmt);
    }
    return stmt;
  };
}

/** Builds the knex configuration for a DATABASE_URL; also used by knexfile.ts. */
export function knexConfig(url: string, opts: DbOptions = {}): Knex.Config {
  const acquire = opts.acquireTimeoutMs ?? 2000;
  if (url.startsWith('sqlite:')) {
    const file = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (file !== ':memory:') fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    return {
      client: 'better-sqlite3',
      connection: { filename: file },
      compileSqlOnError: false,
      useNullAsDefault: true,
      acquireConnectionTimeout: acquire,
      pool: {
        min: 1,
        max: 1,
        afterCreate(conn: SqliteConnection, done: (err: Error | null, conn: unknown) => void) {
          try {
            cachePreparedStatements(conn);
            conn.pragma('journal_mode = WAL');
            conn.pragma('foreign_keys = ON');
            conn.pragma('busy_timeout = 5000');
            conn.pragma('synchronous = NORMAL');
            // MySQL tables use a binary collation; LIKE must be case-sensitive here too, so
            // both dialects answer a filter the same way (case-insensitive attributes are
            // compared on prepared lower-case keys instead).
            conn.pragma('case_sensitive_like = ON');
            done(null, conn);
          } catch (err) {
            done(err as Error, conn);
          }
        },
      },
    };
  }
  const u = new URL(url.replace(/^mariadb:/, 'mysql:'));
  return {
    client: 'mysql2',
    compileSqlOnError: false,
    connection: {
      host: u.hostname,
      port: u.port ? Number(u.port) : 3306,
      user: decodeURIComponent(u.username),
      password: decodeURIComponent(u.password),
      database: u.pathname.replace(/^\//, '') || undefined,
      charset: 'utf8mb4',
      timezone: 'Z',
      connectTimeout: Math.max(acquire, 1000),
      supportBigNumbers: true,
    },
    acquireConnectionTimeout: acquire,
    pool: {
      min: 0,
      max: opts.poolMax ?? 10,
      // A connection that died while the server was away is dropped, not handed out again.
      idleTimeoutMillis: 30000,
      afterCreate(
        conn: { query(sql: string, cb: (err: Error | null) => void): void },
        done: (err: Error | null, conn: unknown) => void,
      ) {
        conn.query("SET SESSION sql_mode = 'TRADITIONAL,NO_AUTO_VALUE_ON_ZERO', time_zone = '+00:00'", (err) =>
          done(err, conn),
        );
      },
    },
  };
}

export function openDb(url: string, opts: DbOptions = {}): Db {
  const config = knexConfig(url, opts);
  const logger = opts.logger;
  if (logger) {
    config.log = {
      warn: (message: unknown) => logger.warn({ knex: String(message) }, 'database warning'),
      error: (message: unknown) => logger.error({ knex: String(message) }, 'database error'),
      deprecate: (message: unknown) => logger.warn({ knex: String(message) }, 'database deprecation'),
      debug: () => undefined,
    };
  }
  const knex = knexFactory(config);
  // Runs before the failed query's promise settles, so no caller or log ever sees a bound value.
  knex.on('query-error', (err: unknown, obj?: { sql?: unknown }) =>
    scrubBoundValues(err, typeof obj?.sql === 'string' ? obj.sql : undefined),
  );
  const dialect = config.client === 'better-sqlite3' ? sqliteDialect : mysqlDialect;
  return {
    knex,
    dialect,
    async tx<T>(fn: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
      for (let attempt = 0; ; attempt++) {
        try {
          return await knex.transaction(fn);
        } catch (err) {
          if (attempt === 0 && dialect.isRetryable(err)) continue;
          throw translateDbError(err);
        }
      }
    },
    close: () => knex.destroy(),
  };
}
