import type { Knex } from 'knex';
import { ensureColumn, ensureTable } from '../src/db/ensure-table.js';

export const name = '009_sso_bindings';

// Constants of this migration, fixed as they were when it was written.
const PROTOCOLS = ['saml', 'oidc'] as const;
const CONNECTION_SOURCE = 'connection';

export async function up(knex: Knex): Promise<void> {
  const isMysql = knex.client.config.client === 'mysql2';

  // Who an IdP identity is: after a first sign-in through a connection, (connection, subject —
  // SAML NameID or OIDC sub) names the user, whatever their email becomes. The subject is hashed
  // to a fixed width for the key (IdPs choose their own lengths) and kept for admins to read.
  // One binding per user and connection: a second identity at the same IdP cannot take it over.
  await ensureTable(knex, 'sso_bindings', (t) => {
    t.string('tenant_id', 36).notNullable();
    t.string('connection_id', 36).notNullable();
    t.string('subject_hash', 64).notNullable();
    t.string('subject', 1024).notNullable();
    t.string('user_id', 36).notNullable();
    t.bigInteger('created_at').notNullable();
    t.primary(['tenant_id', 'connection_id', 'subject_hash'], 'sso_bindings_pk');
    t.unique(['tenant_id', 'connection_id', 'user_id'], { indexName: 'sso_bindings_user_uq' });
    t.index(['tenant_id', 'user_id'], 'sso_bindings_user_idx');
    t.foreign(['tenant_id', 'connection_id'], 'sso_bindings_connection_fk')
      .references(['tenant_id', 'id'])
      .inTable('sso_connections')
      .onDelete('CASCADE');
    t.foreign(['tenant_id', 'user_id'], 'sso_bindings_user_fk')
      .references(['tenant_id', 'id'])
      .inTable('users')
      .onDelete('CASCADE');
  });

  // Email domains a connection may assert (JSON array; empty: any), and whether an OIDC IdP's
  // email counts without email_verified (kept in settings_json with the other OIDC settings).
  await ensureColumn(knex, 'sso_connections', 'domains_json', (t) => t.text('domains_json').nullable());
  await knex('sso_connections').whereNull('domains_json').update({ domains_json: '[]' });

  // Claim groups belong to the connection that asserted them; SCIM groups have ''.
  await ensureColumn(knex, 'idp_groups', 'connection_id', (t) =>
    t.string('connection_id', 36).notNullable().defaultTo(''),
  );
  await replaceNameKey(knex, isMysql);

  // A rule may name the connection whose claim groups it matches.
  await ensureColumn(knex, 'mapping_rules', 'match_connection_id', (t) =>
    t.string('match_connection_id', 36).nullable(),
  );
  // 'connection' is longer than the 8 characters the column had; SQLite does not enforce lengths.
  if (knex.client.config.client !== 'better-sqlite3')
    await knex.schema.alterTable('mapping_rules', (t) => t.string('match_source', 16).notNullable().alter());

  // Existing claim groups and saml/oidc rules: where a tenant has exactly one connection of the
  // protocol, they are that connection's, so a connection added later cannot assert them.
  // Elsewhere the groups stay unowned (the next sign-in through a connection of the protocol
  // drops the user from them) and the rules keep matching every connection of the protocol.
  for (const protocol of PROTOCOLS) {
    const only = await knex('sso_connections')
      .where({ protocol })
      .groupBy('tenant_id')
      .havingRaw('count(*) = 1')
      .select('tenant_id', knex.raw('min(id) as id'));
    for (const r of only as { tenant_id: string; id: string }[]) {
      await knex('idp_groups')
        .where({ tenant_id: r.tenant_id, source: protocol, connection_id: '' })
        .update({ connection_id: r.id });
      await knex('mapping_rules')
        .where({ tenant_id: r.tenant_id, match_source: protocol })
        .update({ match_source: CONNECTION_SOURCE, match_connection_id: r.id });
    }
  }
}

/** The claim-group name key gains the connection: (tenant, source, connection, display name key). */
async function replaceNameKey(knex: Knex, isMysql: boolean): Promise<void> {
  const exists = async (index: string) =>
    isMysql
      ? Boolean(
          await knex('information_schema.statistics')
            .where({ table_schema: knex.raw('database()'), table_name: 'idp_groups', index_name: index })
            .first(),
        )
      : Boolean(await knex('sqlite_master').where({ type: 'index', name: index }).first());
  if (!(await exists('idp_groups_source_name_uq'))) {
    await knex.schema.alterTable('idp_groups', (t) =>
      t.unique(['tenant_id', 'source', 'connection_id', 'display_name_key'], {
        indexName: 'idp_groups_source_name_uq',
      }),
    );
  }
  if (await exists('idp_groups_name_uq')) {
    await knex.schema.alterTable('idp_groups', (t) =>
      t.dropUnique(['tenant_id', 'source', 'display_name_key'], 'idp_groups_name_uq'),
    );
  }
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('sso_bindings');
}
