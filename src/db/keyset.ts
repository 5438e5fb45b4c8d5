import type { Knex } from 'knex';
import { InvalidInput } from '../errors.js';

/** One ordering column: a column name or a non-null SQL expression over the row. */
export interface KeyColumn {
  sql: string;
  dir: 'asc' | 'desc';
}

/** Opaque cursor: the ordering values of the last row of the previous page. */
export function encodeCursor(values: unknown[]): string {
  return Buffer.from(JSON.stringify(values)).toString('base64url');
}

export function decodeCursor(cursor: string, arity: number): (string | number)[] {
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(v) && v.length === arity && v.every((x) => typeof x === 'string' || typeof x === 'number'))
      return v;
  } catch {
    // falls through to the one error below
  }
  throw new InvalidInput('invalid_cursor', 'the cursor is not one this list returned', {
    fields: [{ path: 'query.cursor', message: 'is invalid' }],
  });
}

/**
 * Keyset pagination: rows strictly after the cursor in the given order, so a page costs the same
 * at the end of a list as at its start. The last key column must be unique (the id).
 */
export function keyset(
  q: Knex.QueryBuilder,
  keys: KeyColumn[],
  after: (string | number)[] | undefined,
  limit: number,
): Knex.QueryBuilder {
  if (after) {
    // (a > x) OR (a = x AND b > y) OR …, each comparison in its own column's direction.
    q.where((outer) => {
      keys.forEach((_, i) => {
        outer.orWhere((inner) => {
          for (let j = 0; j < i; j++) inner.andWhereRaw(`${keys[j]!.sql} = ?`, [after[j]!]);
          inner.andWhereRaw(`${keys[i]!.sql} ${keys[i]!.dir === 'asc' ? '>' : '<'} ?`, [after[i]!]);
        });
      });
    });
  }
  for (const k of keys) q.orderByRaw(`${k.sql} ${k.dir}`);
  return q.limit(limit + 1);
}

/** Splits the extra row fetched by `keyset` off into the next cursor. */
export function pageFrom<R>(
  rows: R[],
  limit: number,
  keyOf: (r: R) => (string | number)[],
): { rows: R[]; nextCursor: string | null } {
  if (rows.length <= limit) return { rows, nextCursor: null };
  const page = rows.slice(0, limit);
  return { rows: page, nextCursor: encodeCursor(keyOf(page[page.length - 1]!)) };
}
