import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { STATEMENT_CACHE, cachePreparedStatements, type SqliteConnection } from '../../../src/db/knex.js';

interface Statement {
  get(...params: unknown[]): unknown;
}
interface Connection {
  prepare(sql: string): Statement;
  close(): void;
}
// better-sqlite3 ships no type declarations; this is the part the test uses.
const Database = createRequire(import.meta.url)('better-sqlite3') as new (file: string) => Connection;

/** A real in-memory SQLite connection whose prepare() calls are counted under the cache. */
function connection() {
  const db = new Database(':memory:');
  const prepared: string[] = [];
  const prepare = db.prepare.bind(db);
  (db as unknown as SqliteConnection).prepare = (sql: string) => {
    prepared.push(sql);
    return prepare(sql);
  };
  cachePreparedStatements(db as unknown as SqliteConnection);
  return { db, prepared };
}

describe('SQLite prepared-statement cache', () => {
  it('reuses a statement it has prepared', () => {
    const { db, prepared } = connection();
    for (let i = 0; i < 3; i++) assert.equal((db.prepare('SELECT ? AS v').get(i) as { v: number }).v, i);
    assert.equal(prepared.length, 1);
    db.close();
  });

  it('keeps no more SQL text than its byte budget, whatever the number of entries', () => {
    const { db, prepared } = connection();
    const size = 100 * 1024;
    const sql = (i: number) => `SELECT ${i} AS v /* ${'x'.repeat(size)} */`;
    const n = Math.ceil((STATEMENT_CACHE.bytes * 1.5) / size);
    assert.ok(n < STATEMENT_CACHE.entries, 'the entry bound alone would keep them all');
    for (let i = 0; i < n; i++) db.prepare(sql(i)).get();
    // Newest first: each still cached is a hit; the first miss ends the cached run.
    let kept = 0;
    for (let i = n - 1; i >= 0; i--) {
      const before = prepared.length;
      db.prepare(sql(i)).get();
      if (prepared.length > before) break;
      kept++;
    }
    assert.ok(kept >= 1, 'nothing was cached');
    assert.ok(kept * size <= STATEMENT_CACHE.bytes, `${kept} statements of ${size} bytes kept`);
    db.close();
  });

  it('does not keep a statement larger than a tenth of the budget', () => {
    const { db, prepared } = connection();
    const huge = `SELECT 1 AS v /* ${'y'.repeat(STATEMENT_CACHE.bytes / 5)} */`;
    db.prepare(huge).get();
    db.prepare(huge).get();
    assert.equal(prepared.length, 2);
    db.close();
  });
});
