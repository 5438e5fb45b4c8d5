import type { Knex } from 'knex';
import { dialectOf, type Dialect } from './dialect.js';

/**
 * The one place that splits a statement built from a list into statements the database accepts:
 * SQLite refuses more than 500 rows in one INSERT and more than 32,766 bound values, MySQL a
 * statement larger than `max_allowed_packet`. Every multi-row INSERT and every IN list whose
 * length follows the data goes through here, so no statement grows with a request or a tenant.
 */

/** Splits `items` into runs of at most `size`. */
export function chunksOf<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * Values for IN lists, split so each statement stays within the dialect's limits; `reserved` is
 * how many other values the statement binds besides the list.
 */
export function inListChunks<T>(knex: Knex, values: readonly T[], reserved = 0): T[][] {
  const d = dialectOf(knex);
  return chunksOf(values, Math.max(1, Math.min(d.maxInList, d.maxBindings - reserved)));
}

/**
 * Runs `load` once per IN-list chunk of `values`, one after the other (a transaction has one
 * connection), and concatenates the rows the calls return.
 */
export async function inChunks<T, R>(
  knex: Knex,
  values: readonly T[],
  load: (chunk: T[]) => PromiseLike<R[]>,
): Promise<R[]> {
  const out: R[] = [];
  for (const chunk of inListChunks(knex, values)) for (const r of await load(chunk)) out.push(r);
  return out;
}

/** Runs `run` once per IN-list chunk of `values`, one after the other; for updates and deletes. */
export async function eachChunk<T>(
  knex: Knex,
  values: readonly T[],
  run: (chunk: T[]) => PromiseLike<unknown>,
): Promise<void> {
  for (const chunk of inListChunks(knex, values)) await run(chunk);
}

function valueBytes(v: unknown): number {
  if (typeof v === 'string') return Buffer.byteLength(v);
  if (Buffer.isBuffer(v)) return v.length * 2;
  return 24;
}

/** Rows split for multi-row INSERTs: by row count, bound values and (MySQL) statement bytes. */
export function insertBatches<R extends object>(d: Dialect, rows: readonly R[]): R[][] {
  if (!rows.length) return [];
  const columns = new Set<string>();
  for (const r of rows) for (const k of Object.keys(r)) columns.add(k);
  const maxRows = Math.max(1, Math.min(d.maxInsertRows, Math.floor(d.maxBindings / columns.size)));
  const bounded = Number.isFinite(d.maxStatementBytes);
  const out: R[][] = [];
  let batch: R[] = [];
  let bytes = 0;
  for (const row of rows) {
    let size = 0;
    if (bounded) for (const v of Object.values(row)) size += valueBytes(v);
    // A single row above the budget still goes alone: the limit it meets is the database's.
    if (batch.length === maxRows || (batch.length && bytes + size > d.maxStatementBytes)) {
      out.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(row);
    bytes += size;
  }
  out.push(batch);
  return out;
}

export interface InsertOptions {
  /** Adds an ON CONFLICT clause to each statement, e.g. `(q) => q.onConflict(cols).merge([col])`. */
  conflict?: (q: Knex.QueryBuilder) => PromiseLike<unknown>;
}

/** Inserts `rows` into `table` in as many statements as the dialect needs, in order. */
export async function insertChunked<R extends object>(
  knex: Knex,
  table: string,
  rows: readonly R[],
  opts: InsertOptions = {},
): Promise<void> {
  for (const batch of insertBatches(dialectOf(knex), rows)) {
    const q = knex(table).insert(batch);
    await (opts.conflict ? opts.conflict(q) : q);
  }
}
