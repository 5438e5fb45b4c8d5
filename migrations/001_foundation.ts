import type { Knex } from 'knex';
import { ensureTable } from '../src/db/ensure-table.js';

export const name = '001_foundation';

export async function up(knex: Knex): Promise<void> {
  await ensureTable(knex, 'tenants', (t) => {
    t.string('id', 36).primary('tenants_pk');
    t.string('slug', 64).notNullable().unique({ indexName: 'tenants_slug_uq' });
    t.string('name', 200).notNullable();
    t.integer('user_limit').nullable();
    t.string('time_zone', 64).notNullable().defaultTo('UTC');
    t.boolean('jit_provisioning').notNullable().defaultTo(false);
    t.boolean('rate_limit_disabled').notNullable().defaultTo(false);
    t.bigInteger('created_at').notNullable();
  });

  await ensureTable(knex, 'api_tokens', (t) => {
    t.string('tenant_id', 36).notNullable();
    t.string('id', 36).notNullable();
    t.string('kind', 16).notNullable();
    t.string('name', 200).notNullable();
    // sha256 of the whole token; looked up before the tenant is known, hence its own unique key.
    t.string('token_hash', 64).notNullable().unique({ indexName: 'api_tokens_hash_uq' });
    t.string('hint', 32).notNullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('expires_at').nullable();
    t.bigInteger('last_used_at').nullable();
    t.bigInteger('revoked_at').nullable();
    t.primary(['tenant_id', 'id'], 'api_tokens_pk');
    t.foreign('tenant_id', 'api_tokens_tenant_fk').references('tenants.id').onDelete('CASCADE');
  });

  // Process-wide facts such as "the first-start bootstrap happened".
  await ensureTable(knex, 'roster_meta', (t) => {
    t.string('key', 64).primary('roster_meta_pk');
    t.text('value').notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('roster_meta');
  await knex.schema.dropTableIfExists('api_tokens');
  await knex.schema.dropTableIfExists('tenants');
}
