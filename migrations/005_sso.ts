import type { Knex } from 'knex';
import { ensureTable } from '../src/db/ensure-table.js';

export const name = '005_sso';

export async function up(knex: Knex): Promise<void> {
  // A tenant's SAML and OIDC identity providers. Protocol settings live in one JSON document;
  // the OIDC client secret has its own column so no presenter can serialise it by accident.
  await ensureTable(knex, 'sso_connections', (t) => {
    t.string('tenant_id', 36).notNullable();
    t.string('id', 36).notNullable();
    t.string('protocol', 8).notNullable();
    t.string('name', 200).notNullable();
    t.string('name_key', 200).notNullable();
    t.boolean('enabled').notNullable().defaultTo(true);
    t.string('match_by', 16).notNullable();
    t.text('settings_json', 'mediumtext').notNullable();
    t.text('client_secret').nullable();
    t.integer('version').notNullable().defaultTo(1);
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.primary(['tenant_id', 'id'], 'sso_connections_pk');
    t.unique(['tenant_id', 'name_key'], { indexName: 'sso_connections_name_uq' });
    t.foreign('tenant_id', 'sso_connections_tenant_fk').references('tenants.id').onDelete('CASCADE');
  });

  // Sign-ins under way: a SAML AuthnRequest id (InResponseTo) or an OIDC flow's state, nonce and
  // PKCE verifier. In the database rather than process memory, so the IdP's answer may reach any
  // process; used once (consumed_at), kept until expiry so a replay can be told from a stranger.
  await ensureTable(knex, 'sso_pending', (t) => {
    t.string('tenant_id', 36).notNullable();
    t.string('connection_id', 36).notNullable();
    t.string('id', 128).notNullable();
    t.string('state', 128).nullable();
    t.string('nonce', 128).nullable();
    t.string('code_verifier', 128).nullable();
    t.string('return_to', 1000).nullable();
    t.string('issued_at', 40).notNullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('expires_at').notNullable();
    t.bigInteger('consumed_at').nullable();
    t.primary(['tenant_id', 'connection_id', 'id'], 'sso_pending_pk');
    t.index(['tenant_id', 'expires_at'], 'sso_pending_expiry_idx');
    t.foreign(['tenant_id', 'connection_id'], 'sso_pending_connection_fk')
      .references(['tenant_id', 'id'])
      .inTable('sso_connections')
      .onDelete('CASCADE');
  });

  // SAML assertion ids already used, solicited or not: a captured response cannot be posted twice.
  // The id is hashed to a fixed width; IdPs choose their own lengths.
  await ensureTable(knex, 'sso_assertions', (t) => {
    t.string('tenant_id', 36).notNullable();
    t.string('connection_id', 36).notNullable();
    t.string('assertion_hash', 64).notNullable();
    t.bigInteger('expires_at').notNullable();
    t.primary(['tenant_id', 'connection_id', 'assertion_hash'], 'sso_assertions_pk');
    t.index(['tenant_id', 'expires_at'], 'sso_assertions_expiry_idx');
    t.foreign(['tenant_id', 'connection_id'], 'sso_assertions_connection_fk')
      .references(['tenant_id', 'id'])
      .inTable('sso_connections')
      .onDelete('CASCADE');
  });

  // Browser sessions. The cookie carries the session id; only its sha256 is stored, and it is
  // looked up before the tenant is known, hence its own key. Deleting a user ends their sessions.
  await ensureTable(knex, 'sessions', (t) => {
    t.string('sid_hash', 64).primary('sessions_pk');
    t.string('tenant_id', 36).notNullable();
    t.string('user_id', 36).notNullable();
    t.string('connection_id', 36).nullable();
    t.text('data').notNullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('seen_at').notNullable();
    t.bigInteger('expires_at').notNullable();
    t.index(['tenant_id', 'user_id'], 'sessions_user_idx');
    t.index(['tenant_id', 'connection_id'], 'sessions_connection_idx');
    t.index(['tenant_id', 'expires_at'], 'sessions_expiry_idx');
    t.foreign(['tenant_id', 'user_id'], 'sessions_user_fk')
      .references(['tenant_id', 'id'])
      .inTable('users')
      .onDelete('CASCADE');
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['sessions', 'sso_assertions', 'sso_pending', 'sso_connections']) {
    await knex.schema.dropTableIfExists(table);
  }
}
