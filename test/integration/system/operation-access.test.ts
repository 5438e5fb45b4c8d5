import assert from 'node:assert/strict';
import type { Express } from 'express';
import request from 'supertest';
import { createApp } from '../../../src/app.js';
import { OPERATION_ACCESS, type Access } from '../../../src/access/operation-access.js';
import type { AppDeps } from '../../../src/http/deps.js';
import { testDeps } from '../../support/app.js';
import { dialectName } from '../../support/db.js';
import { buildTenant, type TestTenant } from '../../support/factories.js';
import { buildUser, type TestUser } from '../../support/management.js';
import {
  catalogueArea,
  fixtures,
  kindsOf,
  managementRoutes,
  seq,
  type Fixture,
  type Route,
} from '../../support/routes.js';
import { rowChanges, tenantRows, tenantTables } from '../../support/tenant-rows.js';

/**
 * The access walk: every registered management operation, read off the OpenAPI document the
 * registry generates (so a route added later is covered, or fails the first test for want of a
 * body or a factory), is called by three callers of one tenant: a plain member (a key they own),
 * a user manager (manage on the user-management area) and the tenant's admin key. Each
 * operation's declared `x-roster-access` decides the answer:
 * - a caller below it gets 403 (no operation hides an object's existence from a caller of its
 *   own tenant behind 404) and the tenant's rows do not change;
 * - a caller at or above it gets no 401/403, except the refusals of a command's own rule (never
 *   beyond your own rights), which come after the gate.
 * The objects named belong to another user, so the member holds no relation to them; then the
 * member is made the relation each object-dependent requirement names (the user asked about,
 * a group's manager, an agent's creator) and must pass.
 */

type Caller = 'member' | 'userManager' | 'admin';

/** Who passes each requirement when the objects named are someone else's. */
const PASSES: Record<Access, Caller[]> = {
  public: ['member', 'userManager', 'admin'],
  member: ['member', 'userManager', 'admin'],
  person: ['member', 'userManager'],
  self_or_user_manager: ['userManager', 'admin'],
  group_manager_or_user_manager: ['userManager', 'admin'],
  user_manager: ['userManager', 'admin'],
  admin_or_creator: ['admin'],
  admin: ['admin'],
};

/** Refusals by a command's own rule, which a caller past the gate may still meet. */
const OWN_RIGHTS = new Set(['beyond_own_permissions', 'group_manager_limit']);

describe('operation access: every registered operation, a member, a user manager and an admin', function () {
  this.timeout(dialectName === 'mysql' ? 180_000 : 90_000);
  let deps: AppDeps;
  let app: Express;
  let t: TestTenant;
  let build: ReturnType<typeof fixtures>;
  let routes: Route[];
  let publicOps: string[];
  let declared: Map<string, Access>;
  const problems: string[] = [];
  let member: TestUser;
  let manager: TestUser;

  before(async () => {
    deps = await testDeps();
    app = createApp(deps);
    build = fixtures(app, deps);
    t = await buildTenant();
    const areas = await request(app).get('/api/v1/areas').set(t.admin).expect(200);
    catalogueArea.key = (areas.body.items ?? areas.body)[0].key;
    const doc = await request(app).get('/api/v1/openapi.json').expect(200);
    routes = managementRoutes(doc.body, problems);
    declared = new Map();
    publicOps = [];
    for (const [path, ops] of Object.entries(
      doc.body.paths as Record<
        string,
        Record<string, { operationId: string; 'x-roster-access'?: Access; security?: unknown[] }>
      >,
    )) {
      for (const [method, op] of Object.entries(ops)) {
        const access = op['x-roster-access'];
        if (!access || !(access in PASSES))
          problems.push(`${method.toUpperCase()} ${path} (${op.operationId}): x-roster-access is ${access}`);
        else declared.set(op.operationId, access);
        if (access === 'public') publicOps.push(`${method} ${path}`);
      }
    }
    member = await buildUser(app, t);
    // Manage on Account, which Account › Users inherits.
    manager = await buildUser(app, t, { areas: { account: 'manage' } });
  });

  it('declares who may call every registered operation, in the one table and in the document', () => {
    assert.deepEqual(problems, []);
    assert.deepEqual([...declared.keys()].sort(), Object.keys(OPERATION_ACCESS).sort());
    assert.deepEqual(publicOps, ['post /invitations/accept']);
  });

  it('answers each caller as the operation declares, and a refusal changes nothing', async () => {
    const auth: Record<Caller, { Authorization: string }> = {
      member: member.auth,
      userManager: manager.auth,
      admin: t.admin,
    };
    const tables = await tenantTables(deps.db.knex);
    const snapshot = () => tenantRows(deps.db.knex, tables, t.tenant.id);
    const failures: string[] = [];
    let requests = 0;

    const send = (r: Route, f: Fixture, caller: Caller) => {
      requests++;
      let path = r.path;
      for (const { param, kind } of r.pathKinds) path = path.replace(`{${param}}`, encodeURIComponent(f[kind].id));
      for (const [param, value] of Object.entries(r.staticParams))
        path = path.replace(`{${param}}`, encodeURIComponent(value));
      const query = Object.fromEntries(Object.entries(r.queryKinds).map(([name, kind]) => [name, f[kind].id]));
      const test = request(app)
        [r.method as 'get' | 'post' | 'put' | 'patch' | 'delete'](`/api/v1${path}`)
        .set(auth[caller])
        .query(query);
      const raw = r.raw?.(f);
      if (raw) return test.set('Content-Type', raw.type).send(raw.text);
      return r.body ? test.send(r.body(f) as object) : test;
    };

    /** One call and its verdict against the declaration. */
    const check = async (r: Route, f: Fixture, caller: Caller, passes: boolean, as = caller as string) => {
      const before = passes ? undefined : await snapshot();
      const res = await send(r, f, caller);
      const label = `${r.label} as ${as} (${declared.get(r.operationId!)})`;
      if (!passes) {
        if (res.status !== 403) failures.push(`${label}: expected 403, got ${res.status} ${res.text.slice(0, 300)}`);
        const changed = rowChanges(before!, await snapshot());
        if (changed) failures.push(`${label}: refused (${res.status}) but the tenant changed: ${changed}`);
      } else if (res.status === 401 || (res.status === 403 && !OWN_RIGHTS.has(res.body?.code))) {
        failures.push(`${label}: expected no refusal, got ${res.status} ${res.text.slice(0, 300)}`);
      }
    };

    /** The fixture with the member holding the relation the requirement names, if it names one. */
    const related = async (access: Access, f: Fixture): Promise<Fixture | null> => {
      if (access === 'self_or_user_manager') return { ...f, user: { id: member.id, email: member.email } };
      if (access === 'group_manager_or_user_manager') {
        const name = `managed by the member ${seq()}`;
        const group = await request(app).post('/api/v1/groups').set(t.admin).send({ name }).expect(201);
        await request(app)
          .post(`/api/v1/groups/${group.body.id}/members`)
          .set(t.admin)
          .send({ userIds: [member.id], role: 'manager' })
          .expect(200);
        return { ...f, group: { id: group.body.id, name } };
      }
      if (access === 'admin_or_creator') {
        const name = `registered by the member ${seq()}`;
        const agent = await request(app)
          .post('/api/v1/agents')
          .set(t.admin)
          .send({ name, accessType: 'groups', createdBy: member.id })
          .expect(201);
        return { ...f, agent: { id: agent.body.id, name } };
      }
      return null;
    };

    const callers: Caller[] = ['member', 'userManager', 'admin'];
    const all = await build(t, 'acc', [...new Set(routes.flatMap(kindsOf))]);
    // Reads and writes first, on one set of objects; then each deletion on objects of its own.
    for (const r of routes.filter((x) => x.method !== 'delete')) {
      const access = declared.get(r.operationId!)!;
      for (const caller of callers) await check(r, all, caller, PASSES[access].includes(caller));
      const own = await related(access, all);
      if (own) await check(r, own, 'member', true, 'the member it concerns');
    }
    for (const r of routes.filter((x) => x.method === 'delete')) {
      const access = declared.get(r.operationId!)!;
      for (const caller of callers)
        await check(r, await build(t, 'acc', kindsOf(r)), caller, PASSES[access].includes(caller));
      const own = await related(access, await build(t, 'acc', kindsOf(r)));
      if (own) await check(r, own, 'member', true, 'the member it concerns');
    }
    console.log(`      ${routes.length} operations, ${requests} requests`);
    assert.deepEqual(failures, []);
  });

  it('lets anyone call a public operation without a credential', async () => {
    const res = await request(app).post('/api/v1/invitations/accept').send({ token: 'not-a-token' });
    assert.equal(res.status, 404, res.text);
  });
});
