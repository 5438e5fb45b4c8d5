import type { Knex } from 'knex';
import { ensureColumn, ensureIndex, ensureTable } from '../src/db/ensure-table.js';
import { v7 as newId } from 'uuid';

export const name = '003_access';

// Carried here, not imported: a migration must not change when live code does. These are the
// built-in templates and their name key as they were when this migration was written.
const BUILTIN_TEMPLATES: { name: string; areas: Record<string, string> }[] = [
  {
    name: 'Read-only reviewer',
    areas: {
      analytics: 'read',
      behavior: 'read',
      knowledge: 'read',
      voice: 'read',
      messaging: 'read',
      deployments: 'read',
      account: 'read',
    },
  },
  {
    name: 'Knowledge editor',
    areas: {
      analytics: 'read',
      knowledge: 'edit',
      behavior: 'read',
      voice: 'read',
      messaging: 'read',
      deployments: 'none',
      account: 'none',
    },
  },
  {
    name: 'Full developer',
    areas: {
      analytics: 'edit',
      behavior: 'edit',
      knowledge: 'edit',
      flows: 'edit',
      tools: 'edit',
      voice: 'edit',
      messaging: 'edit',
      integrations: 'edit',
      deployments: 'edit',
      account: 'read',
    },
  },
  {
    name: 'Operations manager',
    areas: {
      analytics: 'edit',
      behavior: 'read',
      knowledge: 'read',
      voice: 'read',
      messaging: 'read',
      deployments: 'edit',
      account: 'edit',
    },
  },
];

const nameKey = (name: string): string => name.normalize('NFC').trim().toLowerCase();

/** Seeds the built-in templates into a tenant that has none of that name yet. */
async function seedBuiltinTemplates(knex: Knex, tenantId: string): Promise<void> {
  const now = Date.now();
  const existing = new Set(
    (await knex('role_templates').where({ tenant_id: tenantId }).select('name_key')).map((r) => String(r.name_key)),
  );
  const rows = BUILTIN_TEMPLATES.filter((t) => !existing.has(nameKey(t.name))).map((t) => ({
    tenant_id: tenantId,
    id: newId(),
    name: t.name,
    name_key: nameKey(t.name),
    areas_json: JSON.stringify(t.areas),
    builtin: true,
    version: 1,
    created_at: now,
    updated_at: now,
  }));
  if (rows.length) await knex('role_templates').insert(rows);
}

export async function up(knex: Knex): Promise<void> {
  // Named permission sets that users reference live: editing one changes every referencing user.
  await ensureTable(knex, 'role_templates', (t) => {
    t.string('tenant_id', 36).notNullable();
    t.string('id', 36).notNullable();
    t.string('name', 200).notNullable();
    t.string('name_key', 200).notNullable();
    t.text('areas_json').notNullable();
    t.boolean('builtin').notNullable().defaultTo(false);
    t.integer('version').notNullable().defaultTo(1);
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.primary(['tenant_id', 'id'], 'role_templates_pk');
    t.unique(['tenant_id', 'name_key'], { indexName: 'role_templates_name_uq' });
    t.foreign('tenant_id', 'role_templates_tenant_fk').references('tenants.id').onDelete('CASCADE');
  });

  // A user's own area settings, kept apart from the SCIM document so no SCIM write can reach them.
  await ensureTable(knex, 'user_area_settings', (t) => {
    t.string('tenant_id', 36).notNullable();
    t.string('user_id', 36).notNullable();
    t.text('areas_json').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.primary(['tenant_id', 'user_id'], 'user_area_settings_pk');
    t.foreign(['tenant_id', 'user_id'], 'user_area_settings_user_fk')
      .references(['tenant_id', 'id'])
      .inTable('users')
      .onDelete('CASCADE');
  });

  // At most one live invitation per invited user; a resend replaces the hash, voiding the old link.
  await ensureTable(knex, 'invitations', (t) => {
    t.string('tenant_id', 36).notNullable();
    t.string('user_id', 36).notNullable();
    t.string('token_hash', 64).notNullable().unique({ indexName: 'invitations_hash_uq' });
    t.bigInteger('expires_at').notNullable();
    t.bigInteger('created_at').notNullable();
    t.integer('sends').notNullable().defaultTo(1);
    t.primary(['tenant_id', 'user_id'], 'invitations_pk');
    t.foreign(['tenant_id', 'user_id'], 'invitations_user_fk')
      .references(['tenant_id', 'id'])
      .inTable('users')
      .onDelete('CASCADE');
  });

  // Transactional outbox: a mail is written with the change that causes it and delivered after
  // commit, so a rolled-back invite sends nothing and a committed one is never lost.
  await ensureTable(knex, 'mail_outbox', (t) => {
    t.string('tenant_id', 36).notNullable();
    t.string('id', 36).notNullable();
    t.string('kind', 32).notNullable();
    t.string('to_address', 320).notNullable();
    t.string('subject', 255).notNullable();
    t.text('text_body', 'mediumtext').notNullable();
    t.text('html_body', 'mediumtext').nullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('sent_at').nullable();
    t.integer('attempts').notNullable().defaultTo(0);
    // When the last attempt started: the retry backoff counts from it, and a process leaves a
    // mail another one is sending alone.
    t.bigInteger('last_attempt_at').nullable();
    t.string('last_error', 1000).nullable();
    t.primary(['tenant_id', 'id'], 'mail_outbox_pk');
    t.index(['sent_at', 'created_at'], 'mail_outbox_pending_idx');
    t.foreign('tenant_id', 'mail_outbox_tenant_fk').references('tenants.id').onDelete('CASCADE');
  });

  // Seats in use, kept with the limit on the tenant row: taking one is a single conditional
  // UPDATE that cannot overshoot the limit under concurrency.
  await ensureColumn(knex, 'tenants', 'seats_used', (t) => {
    t.integer('seats_used').notNullable().defaultTo(0);
  });
  await knex('tenants').update({
    seats_used: knex('users').count('*').where('users.tenant_id', knex.ref('tenants.id')),
  });

  // A key owned by a user acts as that user, with that user's current permissions.
  await ensureColumn(knex, 'api_tokens', 'user_id', (t) => {
    t.string('user_id', 36).nullable();
  });
  await ensureIndex(knex, 'users', 'users_template_idx', ['tenant_id', 'template_id']);
  await ensureIndex(knex, 'users', 'users_role_status_idx', ['tenant_id', 'role', 'status']);

  for (const tenant of await knex('tenants').select('id')) {
    await seedBuiltinTemplates(knex, String(tenant.id));
  }
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['mail_outbox', 'invitations', 'user_area_settings', 'role_templates']) {
    await knex.schema.dropTableIfExists(table);
  }
}
