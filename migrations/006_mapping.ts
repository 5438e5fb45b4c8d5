import type { Knex } from 'knex';
import { ensureTable } from '../src/db/ensure-table.js';

export const name = '006_mapping';

export async function up(knex: Knex): Promise<void> {
  // Rules turn IdP groups into local memberships and agent grants; what they produce carries
  // the rule's id (group_members.rule_id, agent_grants.rule_id) so it can be recomputed exactly.
  await ensureTable(knex, 'mapping_rules', (t) => {
    t.string('tenant_id', 36).notNullable();
    t.string('id', 36).notNullable();
    t.string('name', 200).notNullable();
    t.string('description', 1000).nullable();
    t.boolean('enabled').notNullable();
    t.integer('position').notNullable();
    t.string('match_source', 8).notNullable();
    t.string('match_field', 16).notNullable();
    t.string('match_operator', 8).notNullable();
    t.string('match_value', 255).notNullable();
    t.text('actions_json').notNullable();
    t.integer('version').notNullable().defaultTo(1);
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.primary(['tenant_id', 'id'], 'mapping_rules_pk');
    t.index(['tenant_id', 'position'], 'mapping_rules_position_idx');
    t.foreign('tenant_id', 'mapping_rules_tenant_fk').references('tenants.id').onDelete('CASCADE');
  });

  await ensureTable(knex, 'mapping_sync', (t) => {
    t.string('tenant_id', 36).notNullable();
    t.bigInteger('last_change_at').nullable();
    t.bigInteger('last_reconcile_at').nullable();
    t.integer('last_reconcile_fixed').nullable();
    t.primary(['tenant_id'], 'mapping_sync_pk');
    t.foreign('tenant_id', 'mapping_sync_tenant_fk').references('tenants.id').onDelete('CASCADE');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('mapping_sync');
  await knex.schema.dropTableIfExists('mapping_rules');
}
