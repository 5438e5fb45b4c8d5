import type { Knex } from 'knex';
import { migrations, type Migration } from '../../migrations/index.js';

/** Migrations come from a static list, so the same code runs under tsx and from the build. */
const source: Knex.MigrationSource<Migration> = {
  getMigrations: async () => migrations,
  getMigrationName: (m) => m.name,
  getMigration: async (m) => m,
};

export async function migrateLatest(knex: Knex): Promise<string[]> {
  const [, applied] = (await knex.migrate.latest({ migrationSource: source })) as [number, string[]];
  return applied;
}
