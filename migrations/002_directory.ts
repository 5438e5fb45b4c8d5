import type { Knex } from 'knex';
import { ensureTable } from '../src/db/ensure-table.js';

export const name = '002_directory';

export async function up(knex: Knex): Promise<void> {
  // One identity per person: SCIM, invitations and JIT sign-in all create rows here.
  await ensureTable(knex, 'users', (t) => {
    t.string('tenant_id', 36).notNullable();
    t.string('id', 36).notNullable();
    t.string('user_name', 255).notNullable();
    // PRECIS-prepared userName (width-mapped, lower-cased, NFC): uniqueness and lookups use it.
    t.string('user_name_key', 255).notNullable();
    t.string('external_id', 255).nullable();
    t.string('display_name', 255).nullable();
    t.string('email', 320).nullable();
    t.string('email_key', 320).nullable();
    t.boolean('active').notNullable().defaultTo(true);
    t.string('status', 16).notNullable();
    t.string('role', 16).notNullable().defaultTo('member');
    t.string('template_id', 36).nullable();
    t.boolean('crm_access').notNullable().defaultTo(false);
    t.string('source', 16).notNullable();
    // The SCIM document with canonical attribute names, without id and meta. A SCIM password is
    // never kept: people sign in only through SSO, so a stored hash would be a liability.
    t.text('scim_doc', 'mediumtext').notNullable();
    t.integer('version').notNullable().defaultTo(1);
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.bigInteger('last_login_at').nullable();
    t.primary(['tenant_id', 'id'], 'users_pk');
    t.unique(['tenant_id', 'user_name_key'], { indexName: 'users_user_name_uq' });
    t.index(['tenant_id', 'external_id'], 'users_external_id_idx');
    t.index(['tenant_id', 'email_key'], 'users_email_idx');
    t.index(['tenant_id', 'status'], 'users_status_idx');
    t.foreign('tenant_id', 'users_tenant_fk').references('tenants.id').onDelete('CASCADE');
  });

  // One row per simple value of a user's SCIM attributes, so any filter becomes an indexed
  // EXISTS. `ord` is the element of a multi-valued attribute (0 for singular ones), so
  // `emails[type eq "work" and value co "x"]` can require both on the same element.
  await ensureTable(knex, 'user_attrs', (t) => {
    t.string('tenant_id', 36).notNullable();
    t.string('user_id', 36).notNullable();
    t.string('attr', 128).notNullable();
    t.string('sub', 64).notNullable();
    t.integer('ord').notNullable();
    t.string('value_key', 500).notNullable();
    t.index(['tenant_id', 'attr', 'sub', 'value_key'], 'user_attrs_value_idx');
    t.index(['tenant_id', 'user_id', 'attr'], 'user_attrs_user_idx');
    t.foreign(['tenant_id', 'user_id'], 'user_attrs_user_fk')
      .references(['tenant_id', 'id'])
      .inTable('users')
      .onDelete('CASCADE');
  });

  // IdP groups mirror the directory: pushed over SCIM or seen in sign-in claims. They are not
  // the workspace's own (local) groups; mapping rules connect the two.
  await ensureTable(knex, 'idp_groups', (t) => {
    t.string('tenant_id', 36).notNullable();
    t.string('id', 36).notNullable();
    t.string('source', 8).notNullable();
    t.string('display_name', 255).notNullable();
    t.string('display_name_key', 255).notNullable();
    t.string('external_id', 255).nullable();
    t.text('scim_doc', 'mediumtext').notNullable();
    t.integer('version').notNullable().defaultTo(1);
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.primary(['tenant_id', 'id'], 'idp_groups_pk');
    t.unique(['tenant_id', 'source', 'display_name_key'], { indexName: 'idp_groups_name_uq' });
    t.index(['tenant_id', 'external_id'], 'idp_groups_external_id_idx');
    t.foreign('tenant_id', 'idp_groups_tenant_fk').references('tenants.id').onDelete('CASCADE');
  });

  // Members are users or groups (nested groups are kept as members, never flattened).
  await ensureTable(knex, 'idp_group_members', (t) => {
    t.string('tenant_id', 36).notNullable();
    t.string('group_id', 36).notNullable();
    t.string('member_id', 36).notNullable();
    t.string('member_type', 8).notNullable();
    t.bigInteger('created_at').notNullable();
    t.primary(['tenant_id', 'group_id', 'member_id'], 'idp_group_members_pk');
    t.index(['tenant_id', 'member_id'], 'idp_group_members_member_idx');
    t.foreign(['tenant_id', 'group_id'], 'idp_group_members_group_fk')
      .references(['tenant_id', 'id'])
      .inTable('idp_groups')
      .onDelete('CASCADE');
  });

  // Append-only. No foreign keys: events outlive the users and groups they name.
  await ensureTable(knex, 'audit_events', (t) => {
    t.string('tenant_id', 36).notNullable();
    t.string('id', 36).notNullable();
    t.bigInteger('at').notNullable();
    t.string('actor_type', 16).notNullable();
    t.string('actor_id', 36).nullable();
    t.string('actor_display', 255).nullable();
    t.string('event', 64).notNullable();
    t.string('entity_type', 32).notNullable();
    t.string('entity_id', 36).nullable();
    t.string('entity_name', 255).nullable();
    t.text('before_json', 'mediumtext').nullable();
    t.text('after_json', 'mediumtext').nullable();
    t.string('request_id', 128).nullable();
    t.primary(['tenant_id', 'id'], 'audit_events_pk');
    t.index(['tenant_id', 'event', 'id'], 'audit_events_event_idx');
    t.index(['tenant_id', 'entity_type', 'entity_id', 'id'], 'audit_events_entity_idx');
    t.index(['tenant_id', 'actor_id', 'id'], 'audit_events_actor_idx');
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['audit_events', 'idp_group_members', 'idp_groups', 'user_attrs', 'users']) {
    await knex.schema.dropTableIfExists(table);
  }
}
