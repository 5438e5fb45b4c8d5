import assert from 'node:assert/strict';
import request from 'supertest';
import type { Principal } from '../../../src/access/principal.js';
import { systemCtx } from '../../../src/context.js';
import type { Db } from '../../../src/db/knex.js';
import { newId } from '../../../src/db/ids.js';
import { liveDerivedSql } from '../../../src/mapping/live.js';
import { createRule, sweepChunk } from '../../../src/provisioning/mapping.js';
import { dialectName, testDb } from '../../support/db.js';
import { useApp, useTenant } from '../../support/harness.js';
import { TestSamlIdp } from '../../support/saml.js';
import { oktaUser, scimClient } from '../../support/scim.js';
import { createAgent } from '../../support/workspace.js';

const ADMIN: Principal = { kind: 'admin_key', tokenId: 'test', name: 'test' };
const within = <T>(p: Promise<T>, ms: number) =>
  Promise.race([p, new Promise<'blocked'>((r) => setTimeout(() => r('blocked'), ms))]);

/**
 * Connections decide what mapping rules match (claim groups belong to them; protocol-wide
 * sources depend on how many there are), so their writes take the mapping lock exclusively,
 * like rule changes. On SQLite transactions never interleave; these races are MariaDB's.
 */
describe('SSO connection changes and mapping rule work serialize (MariaDB)', () => {
  let db: Db;
  before(async function () {
    if (dialectName !== 'mysql') this.skip();
    db = await testDb();
  });
  const app = useApp();
  const t = useTenant();

  it('deleting a connection waits for a sweep chunk in flight, then revokes what its claim groups gave', async () => {
    const idp = new TestSamlIdp();
    const conn = (
      await request(app)
        .post('/api/v1/sso-connections')
        .set(t.admin)
        .send({ protocol: 'saml', name: 'Corp', idpMetadataXml: idp.metadata() })
        .expect(201)
    ).body;
    const agent = await createAgent(app, t, 'A');
    const u = (
      await scimClient(app, t.scimToken)
        .post('/Users', oktaUser('cd@example.com', { externalId: 'cd' }))
        .expect(201)
    ).body.id as string;
    // A claim group of the connection with u in it, as a sign-in leaves it.
    const g = newId();
    const now = Date.now();
    await db.knex('idp_groups').insert({
      tenant_id: t.tenant.id,
      id: g,
      source: 'saml',
      connection_id: conn.id,
      display_name: 'eng',
      display_name_key: 'eng',
      external_id: null,
      scim_doc: '{}',
      version: 1,
      created_at: now,
      updated_at: now,
    });
    await db
      .knex('idp_group_members')
      .insert({ tenant_id: t.tenant.id, group_id: g, member_id: u, member_type: 'User', created_at: now });
    const r = await createRule(db, systemCtx(t.tenant.id), ADMIN, {
      name: 'corp eng',
      enabled: true,
      match: { source: 'connection', connectionId: conn.id, field: 'displayName', operator: 'equals', value: 'eng' },
      actions: { groups: [], agents: [{ agentId: agent, permission: 'edit' }] },
    });
    // The rule's sweep: one chunk in flight, as the job runner runs it, not yet committed.
    const trx = await db.knex.transaction();
    await sweepChunk(trx, systemCtx(t.tenant.id), { ruleId: r.rule.id, version: r.rule.version, deleted: false }, '');
    const del = request(app)
      .delete(`/api/v1/sso-connections/${conn.id}`)
      .set(t.admin)
      .then((res) => res.status);
    assert.equal(await within(del, 1000), 'blocked', 'the delete did not wait for the chunk');
    await trx.commit();
    assert.equal(await del, 204);
    const left = await db
      .knex('agent_grants')
      .where({ tenant_id: t.tenant.id, agent_id: agent, subject_id: u })
      .whereRaw(liveDerivedSql('agent_grants'));
    assert.equal(left.length, 0, 'a grant derived from the deleted connection still counts');
    assert.deepEqual((await request(app).get(`/api/v1/users/${u}/agents`).set(t.admin).expect(200)).body.items, []);
  });
});
