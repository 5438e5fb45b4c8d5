import type { Knex } from 'knex';
import { ensureTable } from '../src/db/ensure-table.js';

export const name = '004_workspace';

/**
 * The workspace's own groups and agents (seed 004). Memberships and grants carry their
 * provenance: `rule_id` and `idp_group_id` are empty for what an admin made by hand, and name
 * the mapping rule and IdP group for what a rule derived, so a rule's output can be recomputed
 * and revoked exactly without touching manual rows.
 */
export async function up(knex: Knex): Promise<void> {
  await ensureTable(knex, 'local_groups', (t) => {
    t.string('tenant_id', 36).notNullable();
    t.string('id', 36).notNullable();
    t.string('name', 200).notNullable();
    t.string('name_key', 200).notNullable();
    t.string('description', 1000).nullable();
    t.string('status', 16).notNullable().defaultTo('active');
    t.string('parent_id', 36).nullable();
    t.integer('version').notNullable().defaultTo(1);
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.primary(['tenant_id', 'id'], 'local_groups_pk');
    t.unique(['tenant_id', 'name_key'], { indexName: 'local_groups_name_uq' });
    t.index(['tenant_id', 'parent_id'], 'local_groups_parent_idx');
    t.foreign('tenant_id', 'local_groups_tenant_fk').references('tenants.id').onDelete('CASCADE');
  });

  await ensureTable(knex, 'group_members', (t) => {
    t.string('tenant_id', 36).notNullable();
    t.string('group_id', 36).notNullable();
    t.string('user_id', 36).notNullable();
    t.string('role', 16).notNullable();
    t.string('rule_id', 36).notNullable().defaultTo('');
    t.string('idp_group_id', 36).notNullable().defaultTo('');
    t.bigInteger('created_at').notNullable();
    t.primary(['tenant_id', 'group_id', 'user_id', 'rule_id', 'idp_group_id'], 'group_members_pk');
    t.index(['tenant_id', 'user_id'], 'group_members_user_idx');
    t.index(['tenant_id', 'rule_id', 'idp_group_id'], 'group_members_rule_idx');
    t.foreign(['tenant_id', 'group_id'], 'group_members_group_fk')
      .references(['tenant_id', 'id'])
      .inTable('local_groups')
      .onDelete('CASCADE');
    t.foreign(['tenant_id', 'user_id'], 'group_members_user_fk')
      .references(['tenant_id', 'id'])
      .inTable('users')
      .onDelete('CASCADE');
  });

  await ensureTable(knex, 'agents', (t) => {
    t.string('tenant_id', 36).notNullable();
    t.string('id', 36).notNullable();
    t.string('name', 200).notNullable();
    t.string('description', 1000).nullable();
    t.string('access_type', 16).notNullable();
    // No foreign key: an agent outlives its creator (the creator's access ends with them).
    t.string('created_by', 36).nullable();
    t.integer('version').notNullable().defaultTo(1);
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.primary(['tenant_id', 'id'], 'agents_pk');
    t.foreign('tenant_id', 'agents_tenant_fk').references('tenants.id').onDelete('CASCADE');
  });

  // Grants are evaluated at check time against their window, so access appears and disappears
  // on time with no job. Dates are local calendar days in `time_zone`.
  await ensureTable(knex, 'agent_grants', (t) => {
    t.string('tenant_id', 36).notNullable();
    t.string('id', 36).notNullable();
    t.string('agent_id', 36).notNullable();
    t.string('subject_type', 8).notNullable();
    t.string('subject_id', 36).notNullable();
    t.string('permission', 16).notNullable();
    t.string('start_date', 10).nullable();
    t.string('end_date', 10).nullable();
    t.string('time_zone', 64).notNullable();
    t.string('rule_id', 36).notNullable().defaultTo('');
    t.string('idp_group_id', 36).notNullable().defaultTo('');
    t.bigInteger('created_at').notNullable();
    t.primary(['tenant_id', 'id'], 'agent_grants_pk');
    t.index(['tenant_id', 'agent_id'], 'agent_grants_agent_idx');
    t.index(['tenant_id', 'subject_type', 'subject_id'], 'agent_grants_subject_idx');
    t.index(['tenant_id', 'rule_id', 'idp_group_id'], 'agent_grants_rule_idx');
    t.foreign(['tenant_id', 'agent_id'], 'agent_grants_agent_fk')
      .references(['tenant_id', 'id'])
      .inTable('agents')
      .onDelete('CASCADE');
  });

  await ensureTable(knex, 'agent_data_sources', (t) => {
    t.string('tenant_id', 36).notNullable();
    t.string('id', 36).notNullable();
    t.string('agent_id', 36).notNullable();
    t.string('name', 200).notNullable();
    t.string('access', 16).notNullable();
    t.bigInteger('created_at').notNullable();
    t.primary(['tenant_id', 'id'], 'agent_data_sources_pk');
    t.index(['tenant_id', 'agent_id'], 'agent_data_sources_agent_idx');
    t.foreign(['tenant_id', 'agent_id'], 'agent_data_sources_agent_fk')
      .references(['tenant_id', 'id'])
      .inTable('agents')
      .onDelete('CASCADE');
  });

  await ensureTable(knex, 'data_source_groups', (t) => {
    t.string('tenant_id', 36).notNullable();
    t.string('data_source_id', 36).notNullable();
    t.string('group_id', 36).notNullable();
    t.primary(['tenant_id', 'data_source_id', 'group_id'], 'data_source_groups_pk');
    t.index(['tenant_id', 'group_id'], 'data_source_groups_group_idx');
    t.foreign(['tenant_id', 'data_source_id'], 'data_source_groups_source_fk')
      .references(['tenant_id', 'id'])
      .inTable('agent_data_sources')
      .onDelete('CASCADE');
    t.foreign(['tenant_id', 'group_id'], 'data_source_groups_group_fk')
      .references(['tenant_id', 'id'])
      .inTable('local_groups')
      .onDelete('CASCADE');
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of [
    'data_source_groups',
    'agent_data_sources',
    'agent_grants',
    'agents',
    'group_members',
    'local_groups',
  ]) {
    await knex.schema.dropTableIfExists(table);
  }
}
