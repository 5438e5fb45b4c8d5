import assert from 'node:assert/strict';
import request from 'supertest';
import { testDb } from '../../support/db.js';
import { buildTenant, type TestTenant } from '../../support/factories.js';
import { useApp, useTenant } from '../../support/harness.js';
import { auditEvents, buildUser } from '../../support/management.js';
import { patchBody, scimClient } from '../../support/scim.js';
import { addMembers, check, createAgent, createGroup, idpGroup, idpPatch } from '../../support/workspace.js';

type Body = Record<string, unknown>;

function rule(
  value: string,
  actions: { groups?: { groupId: string; role: string }[]; agents?: Body[] },
  match: Partial<{ source: string; field: string; operator: string }> = {},
): Body {
  return {
    name: `rule for ${value}`,
    enabled: true,
    match: { source: 'any', field: 'displayName', operator: 'equals', value, ...match },
    actions: { groups: actions.groups ?? [], agents: actions.agents ?? [] },
  };
}

/** The user ids holding any row in a local group (manual or derived), and their sources. */
async function members(t: TestTenant, groupId: string): Promise<Map<string, string[]>> {
  const db = await testDb();
  const rows = await db.knex('group_members').where({ tenant_id: t.tenant.id, group_id: groupId });
  const out = new Map<string, string[]>();
  for (const r of rows)
    out.set(String(r.user_id), [...(out.get(String(r.user_id)) ?? []), r.rule_id ? 'rule' : 'manual'].sort());
  return out;
}

describe('mapping rules', () => {
  const app = useApp();
  const t = useTenant();

  it('turns IdP group membership into local memberships and agent grants, incrementally, with provenance', async () => {
    const eng = await createGroup(app, t, 'Engineering');
    const bot = await createAgent(app, t, 'Code Assistant');
    const [a, b, c] = [await buildUser(app, t), await buildUser(app, t), await buildUser(app, t)];
    const idp = await idpGroup(app, t, 'ENG-All', [a.id]);
    const created = await request(app)
      .post('/api/v1/mapping-rules')
      .set(t.admin)
      .send(
        rule('eng-all', {
          groups: [{ groupId: eng, role: 'member' }],
          agents: [{ agentId: bot, permission: 'view_use' }],
        }),
      )
      .expect(201);
    // Applied at once to the existing IdP group, case-insensitively on displayName.
    assert.deepEqual(created.body.applied, {
      membershipsAdded: 1,
      membershipsRemoved: 0,
      grantsAdded: 1,
      grantsRemoved: 0,
    });
    assert.deepEqual([...(await members(t, eng)).keys()], [a.id]);

    await idpPatch(app, t, idp, { op: 'add', path: 'members', value: [{ value: b.id }, { value: c.id }] });
    assert.deepEqual([...(await members(t, eng)).keys()].sort(), [a.id, b.id, c.id].sort());
    const access = await check(app, t, bot, b.id);
    assert.equal(access.use, true);
    assert.deepEqual(access.reasons, [`rule "rule for eng-all" grants view_use to members of IdP group "ENG-All"`]);

    await idpPatch(app, t, idp, { op: 'remove', path: `members[value eq "${b.id}"]` });
    assert.deepEqual([...(await members(t, eng)).keys()].sort(), [a.id, c.id].sort());
    assert.equal((await check(app, t, bot, b.id)).use, false);

    const added = await auditEvents(app, t, 'group.member_added');
    assert.ok(
      added.some(
        (e) => e.actor.type === 'rule' && e.actor.id === created.body.id && e.actor.display === 'rule for eng-all',
      ),
    );
    const removed = await auditEvents(app, t, 'group.member_removed');
    assert.equal(removed[0]!.actor.type, 'rule');
    const idps = await request(app).get(`/api/v1/users/${a.id}/idp-groups`).set(t.admin).expect(200);
    assert.deepEqual(
      idps.body.items.map((g: { displayName: string; source: string; direct: boolean }) => [
        g.displayName,
        g.source,
        g.direct,
      ]),
      [['ENG-All', 'scim', true]],
    );
  });

  it('never disturbs what an admin made by hand; where both exist, removing one leaves the other', async () => {
    const g = await createGroup(app, t, 'Support');
    const u = await buildUser(app, t);
    const idp = await idpGroup(app, t, 'support', [u.id]);
    await request(app)
      .post('/api/v1/mapping-rules')
      .set(t.admin)
      .send(rule('support', { groups: [{ groupId: g, role: 'member' }] }))
      .expect(201);
    await addMembers(app, t, g, [u.id]);
    assert.deepEqual((await members(t, g)).get(u.id), ['manual', 'rule']);
    await idpPatch(app, t, idp, { op: 'remove', path: 'members', value: [{ value: u.id }] });
    assert.deepEqual((await members(t, g)).get(u.id), ['manual']);
    await idpPatch(app, t, idp, { op: 'add', path: 'members', value: [{ value: u.id }] });
    await request(app)
      .delete(`/api/v1/groups/${g}/members/${u.id}`)
      .set(t.admin)
      .expect((r) => assert.ok(r.status < 300, `${r.status}`));
    assert.deepEqual((await members(t, g)).get(u.id), ['rule']);
  });

  it('follows renames, nesting, deletion of IdP groups, and deactivation of users', async () => {
    const g = await createGroup(app, t, 'Sales');
    const [u, v] = [await buildUser(app, t), await buildUser(app, t)];
    const parent = await idpGroup(app, t, 'Sales EMEA', []);
    const child = await idpGroup(app, t, 'Sales UK', [v.id]);
    const direct = await idpGroup(app, t, 'sales-temp', [u.id]);
    await request(app)
      .post('/api/v1/mapping-rules')
      .set(t.admin)
      .send(rule('Sales EMEA', { groups: [{ groupId: g, role: 'member' }] }))
      .expect(201);
    // Nesting: a member of a child IdP group counts for rules matching its parent.
    await idpPatch(app, t, parent, { op: 'add', path: 'members', value: [{ value: child, type: 'Group' }] });
    assert.deepEqual([...(await members(t, g)).keys()], [v.id]);
    // A rename makes the rule start matching, and stop again.
    // Display names are unique per source: rename the parent away first, then take its name.
    await idpPatch(app, t, parent, { op: 'replace', path: 'displayName', value: 'Sales Europe' });
    assert.deepEqual([...(await members(t, g)).keys()], []);
    await idpPatch(app, t, direct, { op: 'replace', path: 'displayName', value: 'Sales EMEA' });
    assert.deepEqual([...(await members(t, g)).keys()], [u.id]);
    // Deactivation suspends derived access; reactivation restores it.
    const sc = scimClient(app, t.scimToken);
    await sc.patch(`/Users/${u.id}`, patchBody({ op: 'replace', value: { active: false } })).expect(200);
    assert.deepEqual([...(await members(t, g)).keys()], []);
    await sc.patch(`/Users/${u.id}`, patchBody({ op: 'replace', value: { active: true } })).expect(200);
    assert.deepEqual([...(await members(t, g)).keys()], [u.id]);
    // Deleting the IdP group removes what it gave.
    await sc.delete(`/Groups/${direct}`).expect(204);
    assert.deepEqual([...(await members(t, g)).keys()], []);
  });

  it('operators and sources: prefix, glob, externalId and id; a saml-only rule ignores SCIM groups', async () => {
    const g = await createGroup(app, t, 'Matched');
    const u = await buildUser(app, t);
    const idp = await idpGroup(app, t, 'Team-Platform-Core', [u.id], 'ext-123');
    const cases: [Body, boolean][] = [
      [rule('team-plat', { groups: [{ groupId: g, role: 'member' }] }, { operator: 'prefix' }), true],
      [rule('TEAM-*-core', { groups: [{ groupId: g, role: 'member' }] }, { operator: 'glob' }), true],
      [rule('team-?latform-*', { groups: [{ groupId: g, role: 'member' }] }, { operator: 'glob' }), true],
      [rule('ext-123', { groups: [{ groupId: g, role: 'member' }] }, { field: 'externalId' }), true],
      [rule('EXT-123', { groups: [{ groupId: g, role: 'member' }] }, { field: 'externalId' }), false],
      [rule(idp, { groups: [{ groupId: g, role: 'member' }] }, { field: 'id' }), true],
      [rule('Team-Platform-Core', { groups: [{ groupId: g, role: 'member' }] }, { source: 'saml' }), false],
      [rule('Team-Platform', { groups: [{ groupId: g, role: 'member' }] }), false],
    ];
    for (const [body, matches] of cases) {
      const res = await request(app).post('/api/v1/mapping-rules').set(t.admin).send(body).expect(201);
      assert.equal((await members(t, g)).has(u.id), matches, JSON.stringify(body.match));
      await request(app).delete(`/api/v1/mapping-rules/${res.body.id}`).set(t.admin).expect(200);
      assert.equal((await members(t, g)).has(u.id), false);
    }
  });

  it('rule edits recompute that rule alone: disable, enable, change, delete; two rules keep one membership alive', async () => {
    const g = await createGroup(app, t, 'Shared');
    const other = await createGroup(app, t, 'Other');
    const u = await buildUser(app, t);
    await idpGroup(app, t, 'alpha', [u.id]);
    await idpGroup(app, t, 'beta', [u.id]);
    const r1 = (
      await request(app)
        .post('/api/v1/mapping-rules')
        .set(t.admin)
        .send(rule('alpha', { groups: [{ groupId: g, role: 'member' }] }))
        .expect(201)
    ).body.id;
    const r2 = (
      await request(app)
        .post('/api/v1/mapping-rules')
        .set(t.admin)
        .send(rule('beta', { groups: [{ groupId: g, role: 'manager' }] }))
        .expect(201)
    ).body.id;
    assert.equal((await members(t, g)).get(u.id)!.length, 2);
    const off = await request(app)
      .patch(`/api/v1/mapping-rules/${r1}`)
      .set(t.admin)
      .send({ enabled: false })
      .expect(200);
    assert.equal(off.body.applied.membershipsRemoved, 1);
    assert.equal((await members(t, g)).get(u.id)!.length, 1, 'the other rule still gives it');
    await request(app).patch(`/api/v1/mapping-rules/${r1}`).set(t.admin).send({ enabled: true }).expect(200);
    assert.equal((await members(t, g)).get(u.id)!.length, 2);
    await request(app)
      .patch(`/api/v1/mapping-rules/${r1}`)
      .set(t.admin)
      .send({ actions: { groups: [{ groupId: other, role: 'member' }], agents: [] } })
      .expect(200);
    assert.equal((await members(t, g)).get(u.id)!.length, 1);
    assert.ok((await members(t, other)).has(u.id));
    await request(app).delete(`/api/v1/mapping-rules/${r2}`).set(t.admin).expect(200);
    assert.equal((await members(t, g)).has(u.id), false);
    const events = (await auditEvents(app, t, 'mapping_rule.disabled')).concat(
      await auditEvents(app, t, 'mapping_rule.deleted'),
    );
    assert.equal(events.length, 2);
    assert.equal(events[0]!.actor.type, 'api_key');
    const list = await request(app).get('/api/v1/mapping-rules').set(t.admin).expect(200);
    assert.deepEqual(
      list.body.items.map((r: { id: string }) => r.id),
      [r1],
    );
  });

  it('previews a new or edited rule without changing anything', async () => {
    const g = await createGroup(app, t, 'Preview Group');
    const agent = await createAgent(app, t, 'Preview Agent');
    const [u, v] = [await buildUser(app, t), await buildUser(app, t)];
    const idp = await idpGroup(app, t, 'finance', [u.id, v.id]);
    const body = rule(
      'fin*',
      {
        groups: [{ groupId: g, role: 'manager' }],
        agents: [{ agentId: agent, permission: 'edit', endDate: '2030-01-31', timeZone: 'Europe/Paris' }],
      },
      { operator: 'glob' },
    );
    const res = await request(app).post('/api/v1/mapping-rules/preview').set(t.admin).send(body).expect(200);
    assert.deepEqual(
      res.body.matchedGroups.map((x: { id: string }) => x.id),
      [idp],
    );
    assert.equal(res.body.changes.length, 2);
    assert.deepEqual(res.body.changes[0].gains.sort(), [
      'edit on agent Preview Agent',
      'manager of group Preview Group',
    ]);
    assert.equal((await members(t, g)).size, 0, 'a preview changes nothing');
    const saved = (await request(app).post('/api/v1/mapping-rules').set(t.admin).send(body).expect(201)).body.id;
    const edit = await request(app)
      .post('/api/v1/mapping-rules/preview')
      .set(t.admin)
      .send({
        ...body,
        ruleId: saved,
        match: { source: 'any', field: 'displayName', operator: 'equals', value: 'nothing-matches' },
      })
      .expect(200);
    assert.deepEqual(edit.body.matchedGroups, []);
    assert.deepEqual(
      edit.body.changes.map((c: { loses: string[] }) => c.loses.length),
      [2, 2],
    );
    assert.equal((await members(t, g)).size, 2);
  });

  it('reconcile finds nothing in a healthy tenant and repairs drift; the sync status says when', async () => {
    const g = await createGroup(app, t, 'Drift');
    const u = await buildUser(app, t);
    await idpGroup(app, t, 'drifters', [u.id]);
    await request(app)
      .post('/api/v1/mapping-rules')
      .set(t.admin)
      .send(rule('drifters', { groups: [{ groupId: g, role: 'member' }] }))
      .expect(201);
    const healthy = await request(app).post('/api/v1/mapping-rules/reconcile').set(t.admin).expect(200);
    assert.equal(healthy.body.fixed, 0);
    const db = await testDb();
    await db.knex('group_members').where({ tenant_id: t.tenant.id, group_id: g }).delete();
    const repaired = await request(app).post('/api/v1/mapping-rules/reconcile').set(t.admin).expect(200);
    assert.equal(repaired.body.fixed, 1);
    assert.equal(repaired.body.differences.membershipsAdded[0].userId, u.id);
    assert.ok((await members(t, g)).has(u.id));
    const status = await request(app).get('/api/v1/mapping-rules/status').set(t.admin).expect(200);
    assert.ok(status.body.lastReconcileAt);
    assert.equal(status.body.lastReconcileFixed, 1);
    assert.ok(status.body.lastChangeAt === null || typeof status.body.lastChangeAt === 'string');
  });

  it('refuses rules that point at nothing usable, and non-admins', async () => {
    const priv = await createAgent(app, t, 'Private One', 'private');
    const bad = await request(app)
      .post('/api/v1/mapping-rules')
      .set(t.admin)
      .send(
        rule('x', {
          groups: [{ groupId: 'missing', role: 'member' }],
          agents: [{ agentId: priv, permission: 'view_use', startDate: '2025-02-30', timeZone: 'Mars/Base' }],
        }),
      )
      .expect(422);
    assert.deepEqual(bad.body.fields.map((f: { path: string }) => f.path).sort(), [
      'body.actions.agents.0.agentId',
      'body.actions.agents.0.startDate',
      'body.actions.agents.0.timeZone',
      'body.actions.groups.0.groupId',
    ]);
    const shape = await request(app)
      .post('/api/v1/mapping-rules')
      .set(t.admin)
      .send({
        name: 'x',
        enabled: true,
        match: { source: 'ldap', field: 'displayName', operator: 'equals', value: 'x' },
        actions: { groups: [], agents: [] },
      })
      .expect(400);
    assert.equal(shape.body.fields[0].path, 'body.match.source');
    const member = await buildUser(app, t, { areas: { account: 'manage' } });
    await request(app).post('/api/v1/mapping-rules').set(member.auth).send(rule('x', {})).expect(403);
    const other = await buildTenant();
    const mine = (await request(app).post('/api/v1/mapping-rules').set(t.admin).send(rule('x', {})).expect(201)).body
      .id;
    await request(app).get(`/api/v1/mapping-rules/${mine}`).set(other.admin).expect(404);
  });
});
