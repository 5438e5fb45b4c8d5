import type { Knex } from 'knex';

export const name = '008_rule_versions';

/**
 * Derived rows remember the rule version that produced them, so the access check can ignore a
 * row whose rule was deleted, disabled or changed since (revocation takes effect before any
 * sweep). mapping_locks holds one row per tenant that SCIM/SSO changes lock shared and rule
 * changes lock exclusively (src/mapping/lock.ts); it is apart from mapping_sync because SCIM
 * transactions write mapping_sync, and a shared lock then a write on one row would deadlock.
 * This file carries its own DDL: it must not change when live code does.
 */
export async function up(knex: Knex): Promise<void> {
  const isMysql = knex.client.config.client === 'mysql2';
  for (const table of ['group_members', 'agent_grants']) {
    if (!(await knex.schema.hasColumn(table, 'rule_version'))) {
      await knex.schema.alterTable(table, (t) => {
        t.integer('rule_version').notNullable().defaultTo(0);
      });
      // Rows made before this migration are taken as produced by their rule's current version;
      // rows of deleted rules stay at 0 and no longer count.
      await knex.raw(
        `UPDATE ${table} SET rule_version = COALESCE((SELECT r.version FROM mapping_rules r WHERE r.tenant_id = ${table}.tenant_id AND r.id = ${table}.rule_id), 0)
          WHERE rule_id <> ''`,
      );
    }
  }

  if (!(await knex.schema.hasTable('mapping_locks'))) {
    await knex.schema.dropTableIfExists('mapping_locks__new');
    await knex.schema.createTable('mapping_locks__new', (t) => {
      if (isMysql) {
        t.engine('InnoDB');
        t.charset('utf8mb4');
        t.collate('utf8mb4_bin');
      }
      t.string('tenant_id', 36).notNullable();
      t.primary(['tenant_id'], 'mapping_locks_pk');
      t.foreign('tenant_id', 'mapping_locks_tenant_fk').references('tenants.id').onDelete('CASCADE');
    });
    await knex.schema.renameTable('mapping_locks__new', 'mapping_locks');
  }
  await knex.raw(
    `INSERT INTO mapping_locks (tenant_id) SELECT t.id FROM tenants t WHERE NOT EXISTS (SELECT 1 FROM mapping_locks l WHERE l.tenant_id = t.id)`,
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('mapping_locks');
  for (const table of ['group_members', 'agent_grants']) {
    if (await knex.schema.hasColumn(table, 'rule_version')) {
      await knex.schema.alterTable(table, (t) => {
        t.dropColumn('rule_version');
      });
    }
  }
}
