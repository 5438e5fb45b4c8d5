import assert from 'node:assert/strict';
import request from 'supertest';
import type { Knex } from 'knex';
import type { Principal } from '../../../src/access/principal.js';
import { systemCtx } from '../../../src/context.js';
import type { Db } from '../../../src/db/knex.js';
import { applyMemberSteps, lockGroupForChange } from '../../../src/directory/groups.js';
import { deleteUser } from '../../../src/directory/users.js';
import { createJobWorker } from '../../../src/jobs/index.js';
import { createLogger } from '../../../src/log.js';
import { liveDerivedSql } from '../../../src/mapping/live.js';
import { lockMapping } from '../../../src/mapping/lock.js';
import type { RuleInput } from '../../../src/mapping/store.js';
import {
  createRule,
  syncAfterDirectoryChange,
  updateRule,
  usersAffectedByGroupChange,
} from '../../../src/provisioning/mapping.js';
import { enqueueSweep } from '../../../src/provisioning/mapping-jobs.js';
import { deleteScimUser } from '../../../src/provisioning/scim-users.js';
import { patchScimGroup } from '../../../src/provisioning/scim-groups.js';
import { parsePatchOps, PATCH_OP_SCHEMA } from '../../../src/scim/patch/parse.js';
import { GROUP_RT } from '../../../src/directory/model/registry.js';
import { dialectName, testDb } from '../../support/db.js';
import { useApp, useTenant } from '../../support/harness.js';
import { oktaUser, scimClient } from '../../support/scim.js';
import { createAgent, idpGroup } from '../../support/workspace.js';
import { insertChunked } from '../../../src/db/batch.js';
import { newId } from '../../../src/db/ids.js';

/**
 * The review's interleavings (F4 4c, 4d; issue 12 §3) driven step by step with two connections
 * on MariaDB: one transaction is opened by hand and stopped between steps; the other is the real
 * code path, started at the barrier and allowed to run as far as it can (until it waits for a
 * lock, or ends). Afterwards incremental must equal from scratch: a reconcile fixes nothing and
 * no derived row carries a disabled, deleted or older rule version. SQLite runs one transaction
 * at a time, so these interleavings cannot happen there.
 */

const ADMIN: Principal = { kind: 'admin_key', tokenId: 'test', name: 'test' };
let seq = 0;

/** A SCIM PATCH of a group's members, as the route parses it. */
function ops(op: 'add' | 'remove', value: { value: string; type?: string }[]) {
  return parsePatchOps({ schemas: [PATCH_OP_SCHEMA], Operations: [{ op, path: 'members', value }] }, GROUP_RT);
}

/**
 * Resolves when `p` settles, or when a statement on this test database has been running for
 * 300 ms (here, that is a statement waiting for a lock: every step is a few rows).
 */
async function blockedOrDone(db: Db, p: Promise<unknown>): Promise<'blocked' | 'done'> {
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  const database = String((await db.knex.raw('SELECT DATABASE() AS d'))[0][0].d);
  const since = new Map<string, number>();
  for (let i = 0; i < 1000; i++) {
    if (settled) return 'done';
    const [rows] = await db.knex.raw(
      `SELECT id, info FROM information_schema.processlist WHERE db = ? AND command = 'Query' AND info IS NOT NULL AND info NOT LIKE '%information_schema%'`,
      [database],
    );
    const now = Date.now();
    const seen = new Set<string>();
    for (const r of rows as { id: number; info: string }[]) {
      const key = `${r.id}|${r.info}`;
      seen.add(key);
      if (!since.has(key)) since.set(key, now);
      else if (now - since.get(key)! >= 300) return 'blocked';
    }
    for (const k of [...since.keys()]) if (!seen.has(k)) since.delete(k);
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('neither blocked nor done after 10 s');
}

async function until(done: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + 90_000;
  while (!(await done())) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function runJobs(db: Db): Promise<void> {
  const worker = createJobWorker({ db, logger: createLogger('silent') });
  while (await worker.runOnce());
}

describe('mapping: SCIM changes and rule changes serialize where they meet (MariaDB)', () => {
  let db: Db;
  before(async function () {
    if (dialectName !== 'mysql') this.skip();
    db = await testDb();
  });
  const app = useApp();
  const t = useTenant();

  const ctx = () => systemCtx(t.tenant.id);
  const rule = (value: string, agentId: string): RuleInput => ({
    name: `rule ${value}`,
    enabled: true,
    match: { source: 'any', field: 'displayName', operator: 'equals', value },
    actions: { groups: [], agents: [{ agentId, permission: 'edit' }] },
  });
  const withSweep = async (trx: Knex.Transaction, sweep: Parameters<typeof enqueueSweep>[2]) =>
    void (await enqueueSweep(trx, ctx(), sweep));

  async function user(): Promise<string> {
    return (
      await scimClient(app, t.scimToken)
        .post('/Users', oktaUser(`il${++seq}-${Date.now()}@example.com`, { externalId: `il-${seq}` }))
        .expect(201)
    ).body.id;
  }

  /** Incremental == from scratch, and nothing dead is left behind. */
  async function assertConsistent(): Promise<void> {
    const rec = await request(app).post('/api/v1/mapping-rules/reconcile').set(t.admin).expect(200);
    assert.equal(rec.body.fixed, 0, JSON.stringify(rec.body.differences));
    for (const table of ['group_members', 'agent_grants']) {
      const dead = await db
        .knex(table)
        .where({ tenant_id: t.tenant.id })
        .whereNot('rule_id', '')
        .whereRaw(`NOT ${liveDerivedSql(table)}`)
        .count({ n: '*' })
        .first();
      assert.equal(Number(dead?.n), 0, `${table} keeps rows of a disabled, deleted or older rule`);
    }
  }

  async function grants(agentId: string, userId: string): Promise<number> {
    return Number(
      (
        await db
          .knex('agent_grants')
          .where({ tenant_id: t.tenant.id, agent_id: agentId, subject_id: userId })
          .count({ n: '*' })
          .first()
      )?.n,
    );
  }

  /** A SCIM PATCH adding `userId` to `groupId`, opened by hand: its steps up to the sync. */
  async function openAdd(groupId: string, userId: string) {
    const trx = await db.knex.transaction();
    await lockMapping(trx, t.tenant.id, 'share');
    await lockGroupForChange(trx, t.tenant.id, groupId, Date.now());
    const delta = await applyMemberSteps(
      trx,
      t.tenant.id,
      groupId,
      [{ kind: 'add', members: [{ value: userId }] }],
      Date.now(),
    );
    return { trx, delta };
  }

  it('4c: a rule created while a SCIM change is in flight reaches the user it adds (no lost row)', async () => {
    const agent = await createAgent(app, t, 'A');
    const u = await user();
    const g = await idpGroup(app, t, 'eng', []);
    const { trx, delta } = await openAdd(g, u);
    const other = (async () => {
      await createRule(db, ctx(), ADMIN, rule('eng', agent), withSweep);
      await runJobs(db);
    })();
    await blockedOrDone(db, other);
    await syncAfterDirectoryChange(trx, ctx(), await usersAffectedByGroupChange(trx, t.tenant.id, g, delta, false));
    await trx.commit();
    await other;
    await runJobs(db);
    assert.equal(await grants(agent, u), 1);
    await assertConsistent();
  });

  it('4c mirror: a rule disabled while a SCIM change is in flight leaves no row of it', async () => {
    const agent = await createAgent(app, t, 'A');
    const u = await user();
    const g = await idpGroup(app, t, 'eng', []);
    const r = await createRule(db, ctx(), ADMIN, rule('eng', agent), withSweep);
    await runJobs(db);
    const { trx, delta } = await openAdd(g, u);
    const other = (async () => {
      await updateRule(db, ctx(), ADMIN, r.rule.id, { enabled: false }, withSweep);
      await runJobs(db);
    })();
    await blockedOrDone(db, other);
    await syncAfterDirectoryChange(trx, ctx(), await usersAffectedByGroupChange(trx, t.tenant.id, g, delta, false));
    await trx.commit();
    await other;
    await runJobs(db);
    assert.equal(await grants(agent, u), 0);
    await assertConsistent();
  });

  async function nested() {
    const agent = await createAgent(app, t, 'A');
    const u = await user();
    const child = await idpGroup(app, t, 'child', []);
    const parent = await idpGroup(app, t, 'parent', []);
    await patchScimGroup(db, ctx(), parent, ops('add', [{ value: child, type: 'Group' }]));
    await createRule(db, ctx(), ADMIN, rule('parent', agent), withSweep);
    await runJobs(db);
    return { agent, u, child, parent };
  }

  it('4d: a user added to a child group while the child leaves its parent keeps nothing from the parent (add first)', async () => {
    const { agent, u, child, parent } = await nested();
    const { trx, delta } = await openAdd(child, u);
    const other = patchScimGroup(db, ctx(), parent, ops('remove', [{ value: child }]));
    await blockedOrDone(db, other);
    await syncAfterDirectoryChange(trx, ctx(), await usersAffectedByGroupChange(trx, t.tenant.id, child, delta, false));
    await trx.commit();
    await other;
    assert.equal(await grants(agent, u), 0);
    await assertConsistent();
  });

  it('4d: the same with the nesting change first', async () => {
    const { agent, u, child, parent } = await nested();
    const trx = await db.knex.transaction();
    await lockMapping(trx, t.tenant.id, 'exclusive');
    await lockGroupForChange(trx, t.tenant.id, parent, Date.now());
    const delta = await applyMemberSteps(trx, t.tenant.id, parent, [{ kind: 'remove', ids: [child] }], Date.now());
    const other = patchScimGroup(db, ctx(), child, ops('add', [{ value: u }]));
    await blockedOrDone(db, other);
    await syncAfterDirectoryChange(
      trx,
      ctx(),
      await usersAffectedByGroupChange(trx, t.tenant.id, parent, delta, false),
    );
    await trx.commit();
    await other;
    assert.equal(await grants(agent, u), 0);
    await assertConsistent();
  });

  it('SCIM membership and nesting changes racing rule enables, disables and edits while sweeps run: reconcile fixes nothing', async function () {
    this.timeout(120_000);
    const agents = [await createAgent(app, t, 'A'), await createAgent(app, t, 'B')];
    // 2,500 users seeded directly, so each sweep spans several chunks.
    const now = Date.now();
    const users = Array.from({ length: 2500 }, (_, i) => {
      const name = `race${i}-${now}@example.com`;
      return {
        tenant_id: t.tenant.id,
        id: newId(),
        user_name: name,
        user_name_key: name,
        email: name,
        email_key: name,
        active: true,
        status: 'active',
        role: 'member',
        source: 'scim',
        scim_doc: JSON.stringify({ userName: name }),
        version: 1,
        created_at: now,
        updated_at: now,
      };
    });
    await insertChunked(db.knex, 'users', users);
    const big = await idpGroup(app, t, 'big', []);
    const small = await idpGroup(app, t, 'small', []);
    await insertChunked(
      db.knex,
      'idp_group_members',
      users
        .slice(0, 2000)
        .map((u) => ({ tenant_id: t.tenant.id, group_id: big, member_id: u.id, member_type: 'User', created_at: now })),
    );
    const r = await createRule(db, ctx(), ADMIN, rule('big', agents[0]!), withSweep);
    const worker = createJobWorker({ db, logger: createLogger('silent'), pollMs: 20 });
    worker.start();
    try {
      const scim = (async () => {
        for (let i = 0; i < 40; i++) {
          const u = users[2000 + (i % 500)]!.id;
          if (i % 10 === 9)
            await patchScimGroup(
              db,
              ctx(),
              big,
              ops(i % 20 === 9 ? 'add' : 'remove', [{ value: small, type: 'Group' }]),
            );
          else await patchScimGroup(db, ctx(), i % 3 ? small : big, ops(i % 2 ? 'remove' : 'add', [{ value: u }]));
        }
      })();
      const rules = (async () => {
        for (let i = 0; i < 12; i++) {
          const patch: Partial<RuleInput> =
            i % 3 === 0
              ? { enabled: i % 2 === 0 }
              : {
                  actions: {
                    groups: [],
                    agents: [{ agentId: agents[i % 2]!, permission: i % 4 < 2 ? 'edit' : 'view_use' }],
                  },
                };
          await updateRule(db, ctx(), ADMIN, r.rule.id, patch, withSweep);
          await new Promise((res) => setTimeout(res, 30));
        }
      })();
      await Promise.all([scim, rules]);
      await until(
        async () =>
          !(await db.knex('jobs').where({ tenant_id: t.tenant.id }).whereIn('state', ['queued', 'running']).first()),
      );
    } finally {
      await worker.stop();
    }
    const failed = await db.knex('jobs').where({ tenant_id: t.tenant.id, state: 'failed' }).select('error');
    assert.deepEqual(failed, []);
    await assertConsistent();
  });

  async function members(groupId: string, userId: string): Promise<number> {
    return Number(
      (
        await db
          .knex('idp_group_members')
          .where({ tenant_id: t.tenant.id, group_id: groupId, member_id: userId })
          .count({ n: '*' })
          .first()
      )?.n,
    );
  }

  it('a user deleted while a PATCH adds them to a group is not left as a member (PATCH first)', async () => {
    const u = await user();
    const g = await idpGroup(app, t, 'eng', []);
    const { trx } = await openAdd(g, u);
    const other = deleteScimUser(db, ctx(), u);
    await blockedOrDone(db, other);
    await trx.commit();
    await other;
    assert.equal(await members(g, u), 0);
  });

  it('a user deleted while a PATCH adds them to a group is not left as a member (delete first)', async () => {
    const u = await user();
    const g = await idpGroup(app, t, 'eng', []);
    const trx = await db.knex.transaction();
    await lockMapping(trx, t.tenant.id, 'share');
    await deleteUser(trx, t.tenant.id, u);
    const other = patchScimGroup(db, ctx(), g, ops('add', [{ value: u }]));
    await blockedOrDone(db, other);
    await trx.commit();
    await assert.rejects(other, (err: Error & { code?: string }) => err.code === 'unknown_members');
    assert.equal(await members(g, u), 0);
  });
});
