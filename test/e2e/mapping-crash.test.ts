import assert from 'node:assert/strict';
import { insertChunked } from '../../src/db/batch.js';
import { newId } from '../../src/db/ids.js';
import { openDb, type Db } from '../../src/db/knex.js';
import { migrateLatest } from '../../src/db/migrate.js';
import { createTenant } from '../../src/provisioning/tenants.js';
import { issueToken } from '../../src/tenants/store.js';
import { freshDatabaseUrl } from '../support/db.js';
import { listeningPort, startRoster, type Running } from '../support/process.js';

/**
 * A rule's sweep over a large IdP group survives `kill -9` of the process running it: another
 * process resumes the job from its last committed chunk by itself, and the result equals what
 * a reconcile computes. MAPPING_CRASH_USERS sets the size (default 50,000).
 */
const USERS = Number(process.env.MAPPING_CRASH_USERS ?? 50_000);

// biome-ignore lint/suspicious/noExplicitAny: untyped response bodies read field by field
type Json = Record<string, any>;

async function call(
  port: number,
  token: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: Json }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: {
      Authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : {} };
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Users and their membership of one IdP group, written directly in bulk. */
async function seed(db: Db, tenantId: string, idpGroupId: string): Promise<void> {
  const now = Date.now();
  for (let i = 0; i < USERS; i += 5000) {
    const users = Array.from({ length: Math.min(5000, USERS - i) }, (_, j) => {
      const name = `crash${i + j}@example.com`;
      return {
        tenant_id: tenantId,
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
    await db.tx(async (trx) => {
      await insertChunked(trx, 'users', users);
      const members = users.map((u) => ({
        tenant_id: tenantId,
        group_id: idpGroupId,
        member_id: u.id,
        member_type: 'User',
        created_at: now,
      }));
      await insertChunked(trx, 'idp_group_members', members);
    });
  }
}

describe('a mapping rule sweep killed with kill -9', () => {
  const running: Running[] = [];
  afterEach(async () => {
    for (const r of running.splice(0)) {
      if (r.child.exitCode === null && r.child.signalCode === null) {
        r.child.kill('SIGKILL');
        await r.exited;
      }
    }
  });

  it(`resumes in another process and ends equal to a reconcile (${USERS} members)`, async function () {
    this.timeout(240_000);
    const started = Date.now();
    const url = await freshDatabaseUrl('mapping-crash');
    const db = openDb(url, { poolMax: 2 });
    try {
      await migrateLatest(db.knex);
      const tenant = await createTenant(db.knex, { slug: 'crash', userLimit: null });
      const admin = (await issueToken(db.knex, tenant.id, { kind: 'admin' })).token;
      const scim = (await issueToken(db.knex, tenant.id, { kind: 'scim' })).token;
      const env = { DATABASE_URL: url, JOB_LEASE_MS: '2000', JOB_POLL_MS: '100' };

      const first = startRoster(env);
      running.push(first);
      const p1 = await listeningPort(first, 60_000);
      const group = await call(p1, admin, 'POST', '/api/v1/groups', { name: 'Staff' });
      const agent = await call(p1, admin, 'POST', '/api/v1/agents', { name: 'Assistant', accessType: 'groups' });
      const idp = await call(p1, scim, 'POST', '/scim/v2/Groups', {
        schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'],
        displayName: 'all-staff',
      });
      assert.equal(idp.status, 201);
      await seed(db, tenant.id, idp.body.id);
      const seeded = Date.now();

      const created = await call(p1, admin, 'POST', '/api/v1/mapping-rules', {
        name: 'all staff',
        enabled: true,
        match: { source: 'any', field: 'displayName', operator: 'equals', value: 'all-staff' },
        actions: {
          groups: [{ groupId: group.body.id, role: 'member' }],
          agents: [{ agentId: agent.body.id, permission: 'view_use' }],
        },
      });
      // Too large to finish within the request: 202 with the rule and its job.
      assert.equal(created.status, 202, JSON.stringify(created.body));
      assert.equal(created.body.name, 'all staff');
      const jobId = String(created.body.job.id);
      assert.equal(created.body.job.key, `mapping_rule:${created.body.id}`);

      // Killed mid-sweep, once a few chunks have committed.
      await until('a few chunks', 60_000, async () => {
        const job = (await call(p1, admin, 'GET', `/api/v1/jobs/${jobId}`)).body;
        return job.progress.done >= 3000 && job.state === 'running' ? job : undefined;
      });
      first.child.kill('SIGKILL');
      await first.exited;
      const members = async () =>
        Number(
          (
            await db
              .knex('group_members')
              .where({ tenant_id: tenant.id, group_id: group.body.id })
              .count({ n: '*' })
              .first()
          )?.n,
        );
      const atCrash = await members();
      assert.ok(atCrash > 0 && atCrash < USERS, `members at the crash: ${atCrash}`);

      const second = startRoster(env);
      running.push(second);
      const p2 = await listeningPort(second, 60_000);
      const status = (await call(p2, admin, 'GET', '/api/v1/mapping-rules/status')).body;
      assert.deepEqual(
        status.jobs.map((j: Json) => j.id),
        [jobId],
        'the status says a sweep is pending',
      );
      const done = await until('the sweep to resume and finish', 180_000, async () => {
        const job = (await call(p2, admin, 'GET', `/api/v1/jobs/${jobId}`)).body;
        return job.state === 'succeeded' || job.state === 'failed' ? job : undefined;
      });
      assert.equal(done.state, 'succeeded', JSON.stringify(done));
      assert.ok(done.progress.done >= USERS);
      assert.equal(await members(), USERS);
      const swept = Date.now();

      const rec = await call(p2, admin, 'POST', '/api/v1/mapping-rules/reconcile');
      const result =
        rec.status === 200
          ? rec.body
          : (
              await until('the reconcile', 180_000, async () => {
                const job = (await call(p2, admin, 'GET', `/api/v1/jobs/${rec.body.id}`)).body;
                return job.state === 'succeeded' || job.state === 'failed' ? job : undefined;
              })
            ).result;
      assert.equal(result.fixed, 0, JSON.stringify(result.counts));
      assert.deepEqual((await call(p2, admin, 'GET', '/api/v1/mapping-rules/status')).body.jobs, []);
      process.stdout.write(
        `      ${USERS} members: seeded in ${seeded - started} ms; sweep with a kill -9 at ${atCrash} finished ${swept - seeded} ms after the rule; reconcile ${Date.now() - swept} ms\n`,
      );
      second.child.kill('SIGTERM');
      assert.equal(await second.exited, 0);
    } finally {
      await db.close();
    }
  });
});
