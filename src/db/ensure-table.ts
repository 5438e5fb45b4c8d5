import type { Knex } from 'knex';

/**
 * Creates a table unless it exists. MySQL commits each DDL statement on its own, and knex emits
 * a table's indexes as separate statements, so a failure halfway would leave a table without
 * its keys that a re-run would then skip. The table is therefore built under a scratch name and
 * renamed into place: it appears whole or not at all, and a re-run drops the leftover scratch.
 * Index and foreign-key names must be given explicitly (they would otherwise carry the scratch
 * name).
 */
export async function ensureTable(
  knex: Knex,
  name: string,
  build: (t: Knex.CreateTableBuilder) => void,
): Promise<void> {
  if (await knex.schema.hasTable(name)) return;
  const scratch = `${name}__new`;
  await knex.schema.dropTableIfExists(scratch);
  const isMysql = knex.client.config.client === 'mysql2';
  await knex.schema.createTable(scratch, (t) => {
    if (isMysql) {
      t.engine('InnoDB');
      t.charset('utf8mb4');
      // Binary collation: comparisons are exact on both dialects; case-insensitive lookups use
      // prepared *_key columns instead of collation rules that differ between servers.
      t.collate('utf8mb4_bin');
    }
    build(t);
  });
  await knex.schema.renameTable(scratch, name);
}

/** Adds a column unless it exists, so a migration that stopped halfway can be re-run. */
export async function ensureColumn(
  knex: Knex,
  table: string,
  column: string,
  build: (t: Knex.AlterTableBuilder) => void,
): Promise<void> {
  if (await knex.schema.hasColumn(table, column)) return;
  await knex.schema.alterTable(table, build);
}

/** Adds a named index unless one of that name exists on the table. */
export async function ensureIndex(knex: Knex, table: string, name: string, columns: string[]): Promise<void> {
  const isMysql = knex.client.config.client === 'mysql2';
  const found = isMysql
    ? await knex('information_schema.statistics')
        .where({ table_schema: knex.raw('database()'), table_name: table, index_name: name })
        .first()
    : await knex('sqlite_master').where({ type: 'index', name }).first();
  if (found) return;
  await knex.schema.alterTable(table, (t) => t.index(columns, name));
}
