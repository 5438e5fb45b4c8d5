import assert from 'node:assert/strict';
import { openDb } from '../../../src/db/knex.js';
import { migrateLatest } from '../../../src/db/migrate.js';
import { ensureTable } from '../../../src/db/ensure-table.js';
import { migrations } from '../../../migrations/index.js';
import { freshDatabaseUrl } from '../../support/db.js';

describe('migrations', () => {
  it('run from an empty database, then find nothing left to do', async () => {
    const db = openDb(await freshDatabaseUrl('migrate'));
    try {
      const applied = await migrateLatest(db.knex);
      assert.deepEqual(
        applied,
        migrations.map((m) => m.name),
      );
      for (const table of ['tenants', 'api_tokens', 'roster_meta'])
        assert.ok(await db.knex.schema.hasTable(table), table);
      assert.deepEqual(await migrateLatest(db.knex), []);
    } finally {
      await db.close();
    }
  });

  it('re-run cleanly after a table failed halfway (DDL is not transactional on MySQL)', async () => {
    const db = openDb(await freshDatabaseUrl('halfway'));
    try {
      // The index statement fails after CREATE TABLE has already been committed on MySQL.
      await assert.rejects(
        ensureTable(db.knex, 'widgets', (t) => {
          t.string('id', 36).notNullable();
          t.index(['no_such_column'], 'widgets_missing_idx');
        }),
      );
      assert.equal(
        await db.knex.schema.hasTable('widgets'),
        false,
        'a half-built table is visible under its real name',
      );
      await ensureTable(db.knex, 'widgets', (t) => {
        t.string('id', 36).notNullable();
        t.unique(['id'], { indexName: 'widgets_id_uq' });
      });
      assert.equal(await db.knex.schema.hasTable('widgets'), true);
      assert.equal(await db.knex.schema.hasTable('widgets__new'), false);
      await db.knex('widgets').insert({ id: 'a' });
      await assert.rejects(db.knex('widgets').insert({ id: 'a' }), 'the unique key exists after the retry');
    } finally {
      await db.close();
    }
  });
});
