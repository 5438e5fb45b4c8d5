import assert from 'node:assert/strict';
import request from 'supertest';
import type { Express } from 'express';
import type { Principal } from '../../../src/access/principal.js';
import { systemCtx } from '../../../src/context.js';
import {
  deleteRule,
  reconcileChunk,
  sweepChunk,
  updateRule,
  type SweepTarget,
} from '../../../src/provisioning/mapping.js';
import { enqueueSweep, startReconcile } from '../../../src/provisioning/mapping-jobs.js';
import { createJobWorker } from '../../../src/jobs/index.js';
import { createLogger } from '../../../src/log.js';
import { testDb } from '../../support/db.js';
import type { TestTenant } from '../../support/factories.js';
import { useApp, useTenant } from '../../support/harness.js';
import { buildUser } from '../../support/management.js';
import { oktaUser, scimClient } from '../../support/scim.js';
import { check, createAgent, createGroup, grant, idpGroup } from '../../support/workspace.js';

type Body = Record<string, unknown>;
const ADMIN: Principal = { kind: 'admin_key', tokenId: 'test', name: 'test' };

let seq = 0;
async function scimUsers(app: Express, t: TestTenant, n: number): Promise<string[]> {
  const sc = scimClient(app, t.scimToken);
  const ids: string[] = [];
  for (let i = 0; i < n; i++)
    ids.push(
      (
        await sc
          .post('/Users', oktaUser(`rev${++seq}-${Date.now()}@example.com`, { externalId: `rev-${seq}` }))
          .expect(201)
      ).body.id,
    );
  return ids;
}

function rule(value: string, actions: { groups?: Body[]; agents?: Body[] }): Body {
  return {
    name: `rule ${value}`,
    enabled: true,
    match: { source: 'any', field: 'displayName', operator: 'equals', value },
    actions: { groups: actions.groups ?? [], agents: actions.agents ?? [] },
  };
}

async function reconcileFixes(app: Express, t: TestTenant): Promise<number> {
  return (await request(app).post('/api/v1/mapping-rules/reconcile').set(t.admin).expect(200)).body.fixed;
}

/** Derived rows in the tables, whatever they count for: proof that no sweep ran yet. */
async function derivedRows(t: TestTenant, ruleId: string): Promise<number> {
  const db = await testDb();
  const m = await db.knex('group_members').where({ tenant_id: t.tenant.id, rule_id: ruleId }).count({ n: '*' }).first();
  const g = await db.knex('agent_grants').where({ tenant_id: t.tenant.id, rule_id: ruleId }).count({ n: '*' }).first();
  return Number(m?.n) + Number(g?.n);
}

/** A whole sweep in this process, a chunk per transaction (what the sweep job does). */
async function sweepRule(t: TestTenant, target: SweepTarget): Promise<void> {
  const db = await testDb();
  let after = '';
  for (;;) {
    const r = await db.tx((trx) => sweepChunk(trx, systemCtx(t.tenant.id), target, after));
    if (r.state !== 'more') return;
    after = r.next;
  }
}

describe('mapping rules: revocation is final', () => {
  const app = useApp();
  const t = useTenant();

  /** 40 users in IdP group "staff"; the rule gives edit on one agent and membership of a group that may use another. */
  async function setup() {
    const users = await scimUsers(app, t, 40);
    await idpGroup(app, t, 'staff', users);
    const local = await createGroup(app, t, 'Staff');
    const direct = await createAgent(app, t, 'Direct');
    const viaGroup = await createAgent(app, t, 'Via group');
    await grant(app, t, viaGroup, { groupId: local, permission: 'view_use' });
    const created = await request(app)
      .post('/api/v1/mapping-rules')
      .set(t.admin)
      .send(
        rule('staff', {
          groups: [{ groupId: local, role: 'member' }],
          agents: [{ agentId: direct, permission: 'edit' }],
        }),
      )
      .expect(201);
    return { users, local, direct, viaGroup, ruleId: created.body.id as string };
  }

  async function assertRevoked(s: Awaited<ReturnType<typeof setup>>) {
    for (const u of [s.users[0]!, s.users[17]!, s.users[39]!]) {
      for (const agent of [s.direct, s.viaGroup]) {
        const access = await check(app, t, agent, u);
        assert.equal(access.level, 'none', JSON.stringify(access));
        assert.ok(!access.reasons.some((r) => r.includes('rule staff')), access.reasons.join('; '));
      }
      const agents = await request(app).get(`/api/v1/users/${u}/agents`).set(t.admin).expect(200);
      assert.deepEqual(agents.body.items, []);
    }
    for (const agent of [s.direct, s.viaGroup]) {
      const access = await request(app).get(`/api/v1/agents/${agent}/access`).set(t.admin).expect(200);
      assert.deepEqual(access.body.users, []);
      assert.ok(!access.body.grants.some((g: { source: string }) => g.source === 'rule'));
    }
    const members = await request(app).get(`/api/v1/groups/${s.local}/members`).set(t.admin).expect(200);
    assert.deepEqual(members.body.items, []);
    const report = await request(app).get('/api/v1/reports/group-membership').set(t.admin);
    if (report.status === 200) assert.ok(!JSON.stringify(report.body).includes(s.users[0]!));
  }

  it('disabling a rule over many users takes effect on the next request, before its sweep runs', async () => {
    const s = await setup();
    assert.equal((await check(app, t, s.direct, s.users[17]!)).level, 'edit');
    assert.equal((await check(app, t, s.viaGroup, s.users[17]!)).level, 'view_use');
    // The rule change commits; its sweep is not run.
    const change = await updateRule(await testDb(), systemCtx(t.tenant.id), ADMIN, s.ruleId, { enabled: false });
    assert.ok(change.sweep);
    assert.equal(await derivedRows(t, s.ruleId), 80);
    await assertRevoked(s);
    // The sweep only cleans up.
    await sweepRule(t, change.sweep!);
    assert.equal(await derivedRows(t, s.ruleId), 0);
    assert.equal(await reconcileFixes(app, t), 0);
  });

  it('deleting a rule revokes before its sweep; a sweep that stopped half-way leaves nothing in force', async () => {
    const s = await setup();
    const change = await deleteRule(await testDb(), systemCtx(t.tenant.id), ADMIN, s.ruleId);
    // One chunk of the sweep ran, then the process died.
    await (await testDb()).tx((trx) => sweepChunk(trx, systemCtx(t.tenant.id), change.sweep!, '', 10));
    assert.ok((await derivedRows(t, s.ruleId)) > 0);
    await assertRevoked(s);
    assert.ok((await reconcileFixes(app, t)) > 0);
    assert.equal(await derivedRows(t, s.ruleId), 0);
  });

  it('changing what a rule gives stops the old version counting at once; the sweep brings in the new one', async () => {
    const s = await setup();
    const change = await updateRule(await testDb(), systemCtx(t.tenant.id), ADMIN, s.ruleId, {
      actions: { groups: [], agents: [{ agentId: s.direct, permission: 'view_use' }] },
    });
    assert.equal((await check(app, t, s.direct, s.users[3]!)).level, 'none');
    await sweepRule(t, change.sweep!);
    const access = await check(app, t, s.direct, s.users[3]!);
    assert.equal(access.level, 'view_use');
    assert.deepEqual(access.reasons, ['rule "rule staff" grants view_use to members of IdP group "staff"']);
    assert.equal((await check(app, t, s.viaGroup, s.users[3]!)).level, 'none');
    assert.equal(await reconcileFixes(app, t), 0);
  });

  it('renaming a rule revokes nothing and needs no sweep', async () => {
    const s = await setup();
    const change = await updateRule(await testDb(), systemCtx(t.tenant.id), ADMIN, s.ruleId, {
      name: 'renamed',
      position: 7,
    });
    assert.equal(change.sweep, null);
    const access = await check(app, t, s.direct, s.users[5]!);
    assert.equal(access.level, 'edit');
    assert.deepEqual(access.reasons, ['rule "renamed" grants edit to members of IdP group "staff"']);
  });

  it('a manager through a disabled rule loses manager power at once', async () => {
    const local = await createGroup(app, t, 'Leads');
    const lead = await buildUser(app, t);
    const other = await buildUser(app, t);
    await idpGroup(app, t, 'leads', [lead.id]);
    const created = await request(app)
      .post('/api/v1/mapping-rules')
      .set(t.admin)
      .send(rule('leads', { groups: [{ groupId: local, role: 'manager' }] }))
      .expect(201);
    await request(app)
      .post(`/api/v1/groups/${local}/members`)
      .set(lead.auth)
      .send({ userIds: [other.id] })
      .expect(200);
    await request(app).delete(`/api/v1/groups/${local}/members/${other.id}`).set(lead.auth).expect(204);
    await updateRule(await testDb(), systemCtx(t.tenant.id), ADMIN, created.body.id, { enabled: false });
    await request(app)
      .post(`/api/v1/groups/${local}/members`)
      .set(lead.auth)
      .send({ userIds: [other.id] })
      .expect(403);
  });

  it('4a: an older sweep that reaches users after a newer one rewrites nothing', async () => {
    const s = await setup();
    const db = await testDb();
    const ctx = systemCtx(t.tenant.id);
    await idpGroup(app, t, 'staff-2', s.users.slice(0, 5));
    const v2 = await updateRule(db, ctx, ADMIN, s.ruleId, {
      actions: { groups: [], agents: [{ agentId: s.direct, permission: 'edit' }] },
      match: { source: 'any', field: 'displayName', operator: 'equals', value: 'staff' },
    });
    const first = await db.tx((trx) => sweepChunk(trx, ctx, v2.sweep!, '', 10));
    assert.equal(first.state, 'more');
    const v3 = await updateRule(db, ctx, ADMIN, s.ruleId, {
      actions: { groups: [], agents: [{ agentId: s.direct, permission: 'view_use' }] },
      match: { source: 'any', field: 'displayName', operator: 'equals', value: 'staff-2' },
    });
    await sweepRule(t, v3.sweep!);
    // The first sweep resumes after the second finished: it sees the newer version and stops.
    const rest = await db.tx((trx) => sweepChunk(trx, ctx, v2.sweep!, first.next, 10));
    assert.equal(rest.state, 'superseded');
    const edits = await db
      .knex('agent_grants')
      .where({ tenant_id: t.tenant.id, rule_id: s.ruleId, permission: 'edit' })
      .count({ n: '*' })
      .first();
    assert.equal(Number(edits?.n), 0);
    assert.equal((await check(app, t, s.direct, s.users[30]!)).level, 'none');
    assert.equal((await check(app, t, s.direct, s.users[2]!)).level, 'view_use');
    assert.equal(await reconcileFixes(app, t), 0);
  });

  it('4b: a reconcile running while a rule is disabled never brings the rule back', async () => {
    const s = await setup();
    const db = await testDb();
    const ctx = systemCtx(t.tenant.id);
    // Drift for the reconcile to find: one user's rows removed by hand.
    await db
      .knex('agent_grants')
      .where({ tenant_id: t.tenant.id, rule_id: s.ruleId, subject_id: s.users[39]! })
      .delete();
    const first = await db.tx((trx) => reconcileChunk(trx, ctx, '', 10));
    assert.equal(first.state, 'more');
    const change = await updateRule(db, ctx, ADMIN, s.ruleId, { enabled: false });
    await sweepRule(t, change.sweep!);
    let after = first.next;
    for (;;) {
      const r = await db.tx((trx) => reconcileChunk(trx, ctx, after, 10));
      if (r.state !== 'more') break;
      after = r.next;
    }
    assert.equal(await derivedRows(t, s.ruleId), 0);
    await assertRevoked(s);
  });

  it('a pending sweep shows in the status; a worker runs it, and the rule change answers with its job', async () => {
    const s = await setup();
    const db = await testDb();
    const ctx = systemCtx(t.tenant.id);
    await updateRule(
      db,
      ctx,
      ADMIN,
      s.ruleId,
      { enabled: false },
      async (trx, sweep) => void (await enqueueSweep(trx, ctx, sweep)),
    );
    const pending = await request(app).get('/api/v1/mapping-rules/status').set(t.admin).expect(200);
    assert.deepEqual(
      pending.body.jobs.map((j: { kind: string; key: string; state: string }) => [j.kind, j.key, j.state]),
      [['mapping.sweep', `mapping_rule:${s.ruleId}`, 'queued']],
    );
    await assertRevoked(s);
    const worker = createJobWorker({ db, logger: createLogger('silent') });
    while (await worker.runOnce());
    assert.deepEqual((await request(app).get('/api/v1/mapping-rules/status').set(t.admin).expect(200)).body.jobs, []);
    assert.equal(await derivedRows(t, s.ruleId), 0);
    // Over HTTP, a sweep that finishes within the request answers as before, with its job.
    const on = await request(app)
      .patch(`/api/v1/mapping-rules/${s.ruleId}`)
      .set(t.admin)
      .send({ enabled: true })
      .expect(200);
    assert.equal(on.body.job.state, 'succeeded');
    assert.equal(on.body.job.key, `mapping_rule:${s.ruleId}`);
    assert.deepEqual(on.body.applied, {
      membershipsAdded: 40,
      membershipsRemoved: 0,
      grantsAdded: 40,
      grantsRemoved: 0,
    });
    const renamed = await request(app)
      .patch(`/api/v1/mapping-rules/${s.ruleId}`)
      .set(t.admin)
      .send({ name: 'still staff' })
      .expect(200);
    assert.equal(renamed.body.job, null);
    const del = await request(app).delete(`/api/v1/mapping-rules/${s.ruleId}`).set(t.admin).expect(200);
    assert.equal(del.body.applied.grantsRemoved, 40);
    assert.equal(await reconcileFixes(app, t), 0);
  });

  it('a reconcile is a job that can be cancelled before it runs', async () => {
    const s = await setup();
    const db = await testDb();
    await db.knex('agent_grants').where({ tenant_id: t.tenant.id, rule_id: s.ruleId }).delete();
    const job = await startReconcile(db, systemCtx(t.tenant.id), ADMIN);
    assert.equal(job.kind, 'mapping.reconcile');
    const cancelled = await request(app).post(`/api/v1/jobs/${job.id}/cancel`).set(t.admin).expect(200);
    assert.equal(cancelled.body.state, 'cancelled');
    const worker = createJobWorker({ db, logger: createLogger('silent') });
    while (await worker.runOnce());
    // Nothing was repaired by the cancelled job; the next reconcile finds the drift.
    assert.equal((await check(app, t, s.direct, s.users[0]!)).level, 'none');
    assert.equal(await reconcileFixes(app, t), 40);
  });

  it('reconcile and preview answer counts and a bounded sample', async () => {
    const users = await scimUsers(app, t, 130);
    await idpGroup(app, t, 'many', users);
    const local = await createGroup(app, t, 'Many');
    const body = rule('many', { groups: [{ groupId: local, role: 'member' }] });
    const preview = await request(app).post('/api/v1/mapping-rules/preview').set(t.admin).send(body).expect(200);
    assert.deepEqual(preview.body.counts, { usersReached: 130, usersChanged: 130, gains: 130, losses: 0 });
    assert.equal(preview.body.changes.length, 100);
    assert.equal(preview.body.truncated, true);
    await request(app).post('/api/v1/mapping-rules').set(t.admin).send(body).expect(201);
    await (await testDb()).knex('group_members').where({ tenant_id: t.tenant.id, group_id: local }).delete();
    const rec = await request(app).post('/api/v1/mapping-rules/reconcile').set(t.admin).expect(200);
    assert.equal(rec.body.fixed, 130);
    assert.equal(rec.body.counts.membershipsAdded, 130);
    assert.equal(rec.body.differences.membershipsAdded.length, 20);
  });
});
