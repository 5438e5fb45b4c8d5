import assert from 'node:assert/strict';
import type { Knex } from 'knex';
import { openDb } from '../../../src/db/knex.js';
import { matcher, type MatchableGroup, type RuleMatch } from '../../../src/mapping/rules.js';
import { createTenant } from '../../../src/provisioning/tenants.js';
import { migrations } from '../../../migrations/index.js';
import * as m009 from '../../../migrations/009_sso_bindings.js';
import { freshDatabaseUrl } from '../../support/db.js';

/**
 * Data written before claim groups had owners: groups keyed by protocol only, rules matching
 * `saml`/`oidc`. After 009 the rules must still match the groups they matched, and a connection
 * added later must not reach them.
 */
describe('migration 009: claim groups and rules gain their connection', () => {
  const now = Date.now();
  const connection = (tenantId: string, id: string, protocol: string) => ({
    tenant_id: tenantId,
    id,
    protocol,
    name: id,
    name_key: id,
    enabled: true,
    match_by: 'email',
    settings_json: '{}',
    client_secret: null,
    version: 1,
    created_at: now,
    updated_at: now,
  });
  const group = (tenantId: string, id: string, source: string, name: string) => ({
    tenant_id: tenantId,
    id,
    source,
    display_name: name,
    display_name_key: name.toLowerCase(),
    external_id: name,
    scim_doc: '{}',
    version: 1,
    created_at: now,
    updated_at: now,
  });
  const rule = (tenantId: string, id: string, source: string) => ({
    tenant_id: tenantId,
    id,
    name: id,
    enabled: true,
    position: 1,
    match_source: source,
    match_field: 'displayName',
    match_operator: 'equals',
    match_value: 'Eng',
    actions_json: '{"groups":[],"agents":[]}',
    version: 1,
    created_at: now,
    updated_at: now,
  });

  async function ruleMatches(knex: Knex, tenantId: string, ruleId: string): Promise<string[]> {
    const r = await knex('mapping_rules').where({ tenant_id: tenantId, id: ruleId }).first();
    const m = {
      source: r.match_source,
      field: r.match_field,
      operator: r.match_operator,
      value: r.match_value,
      ...(r.match_connection_id ? { connectionId: r.match_connection_id } : {}),
    } as RuleMatch;
    const groups = await knex('idp_groups').where({ tenant_id: tenantId });
    return groups
      .map(
        (g: Record<string, unknown>): MatchableGroup => ({
          id: String(g.id),
          source: g.source as 'saml',
          connectionId: String(g.connection_id),
          externalId: String(g.external_id),
          displayName: String(g.display_name),
        }),
      )
      .filter(matcher(m))
      .map((g) => g.id)
      .sort();
  }

  it('gives the groups and rules of a tenant with one connection of the protocol to it, keeps the others, and re-runs cleanly', async () => {
    const db = openDb(await freshDatabaseUrl('m009'));
    const knex = db.knex;
    try {
      for (const m of migrations.filter((x) => x.name < m009.name)) await m.up(knex);
      const one = await createTenant(knex, { slug: `one-${now}` });
      const two = await createTenant(knex, { slug: `two-${now}` });
      await knex('sso_connections').insert([
        connection(one.id, 'one-saml', 'saml'),
        connection(two.id, 'two-saml-a', 'saml'),
        connection(two.id, 'two-saml-b', 'saml'),
      ]);
      await knex('idp_groups').insert([
        group(one.id, 'g1', 'saml', 'Eng'),
        group(one.id, 'g1-scim', 'scim', 'Eng'),
        group(two.id, 'g2', 'saml', 'Eng'),
      ]);
      await knex('mapping_rules').insert([
        rule(one.id, 'r1', 'saml'),
        rule(one.id, 'r1-any', 'any'),
        rule(two.id, 'r2', 'saml'),
      ]);
      const before = {
        r1: await ruleMatches(knex, one.id, 'r1'),
        any: await ruleMatches(knex, one.id, 'r1-any'),
        r2: await ruleMatches(knex, two.id, 'r2'),
      };

      await m009.up(knex);
      await m009.up(knex);

      const r1 = await knex('mapping_rules').where({ tenant_id: one.id, id: 'r1' }).first();
      assert.equal(r1.match_source, 'connection');
      assert.equal(r1.match_connection_id, 'one-saml');
      assert.equal((await knex('mapping_rules').where({ tenant_id: two.id, id: 'r2' }).first()).match_source, 'saml');
      assert.equal((await knex('idp_groups').where({ tenant_id: one.id, id: 'g1' }).first()).connection_id, 'one-saml');
      assert.equal((await knex('idp_groups').where({ tenant_id: one.id, id: 'g1-scim' }).first()).connection_id, '');
      assert.equal((await knex('idp_groups').where({ tenant_id: two.id, id: 'g2' }).first()).connection_id, '');
      assert.deepEqual((await knex('sso_connections').where({ tenant_id: one.id }).first()).domains_json, '[]');
      assert.deepEqual(
        {
          r1: await ruleMatches(knex, one.id, 'r1'),
          any: await ruleMatches(knex, one.id, 'r1-any'),
          r2: await ruleMatches(knex, two.id, 'r2'),
        },
        before,
      );

      // A connection added later asserts its own "Eng"; the migrated rule does not match it.
      await knex('sso_connections').insert(connection(one.id, 'one-saml-2', 'saml'));
      await knex('idp_groups').insert({ ...group(one.id, 'g1-b', 'saml', 'Eng'), connection_id: 'one-saml-2' });
      assert.deepEqual(await ruleMatches(knex, one.id, 'r1'), ['g1']);
      // The name key now includes the connection: the same name twice in one connection is still refused.
      await assert.rejects(
        knex('idp_groups').insert({ ...group(one.id, 'g1-c', 'saml', 'Eng'), connection_id: 'one-saml-2' }),
      );
      await knex('mapping_rules').insert({
        ...rule(one.id, 'r-long', 'connection'),
        match_connection_id: 'one-saml-2',
      });
    } finally {
      await db.close();
    }
  });
});
