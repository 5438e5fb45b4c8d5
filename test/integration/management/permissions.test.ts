import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import type { Express } from 'express';
import { buildTenant, type TestTenant } from '../../support/factories.js';
import { useApp, useTenant } from '../../support/harness.js';
import { auditEvents, buildUser, templateId } from '../../support/management.js';

type Auth = { Authorization: string };
interface EffectiveArea {
  level: string;
  actions: string[];
  reason: string;
}
interface Permissions {
  own: Record<string, unknown>;
  template: { id: string; name: string } | null;
  effective: Record<string, EffectiveArea>;
}

const LEVELS = ['none', 'read', 'edit', 'manage'] as const;
const ALL = ['view', 'create', 'edit', 'delete', 'manage'];
const EDIT = ['view', 'create', 'edit', 'delete'];

/** Every key of the served catalogue, flattened, with the actions each area has. */
async function catalogueKeys(app: Express, t: TestTenant): Promise<Map<string, string[]>> {
  const res = await request(app).get('/api/v1/areas').set(t.admin).expect(200);
  const out = new Map<string, string[]>();
  const walk = (as: { key: string; actions: string[]; children?: unknown[] }[]) =>
    as.forEach((a) => (out.set(a.key, a.actions), walk((a.children ?? []) as typeof as)));
  walk(res.body);
  return out;
}

async function permissionsOf(app: Express, auth: Auth, id: string): Promise<Permissions> {
  return (await request(app).get(`/api/v1/users/${id}/permissions`).set(auth).expect(200)).body as Permissions;
}

function check(app: Express, auth: Auth, body: object) {
  return request(app).post('/api/v1/access/area-checks').set(auth).send(body);
}

describe('management API: user permissions and area checks', () => {
  const app = useApp();
  const t = useTenant();
  let keys: Map<string, string[]>;
  beforeEach(async () => {
    keys ??= await catalogueKeys(app, t);
  });

  it('PUT then GET answers the own settings and the whole effective tree with reasons', async () => {
    const u = await buildUser(app, t);
    const put = await request(app)
      .put(`/api/v1/users/${u.id}/permissions`)
      .set(t.admin)
      .send({ areas: { 'knowledge.faqs': 'read', knowledge: 'edit', account: 'none', integrations: 'manage' } })
      .expect(200);
    const got = await permissionsOf(app, t.admin, u.id);
    assert.deepEqual(put.body, got);
    assert.deepEqual(got.own, { knowledge: 'edit', 'knowledge.faqs': 'read', integrations: 'manage', account: 'none' });
    assert.equal(got.template, null);
    assert.deepEqual(Object.keys(got.effective).sort(), [...keys.keys()].sort());
    assert.ok(keys.size > 40, 'the default catalogue has every sub-section');

    assert.deepEqual(got.effective.knowledge, { level: 'edit', actions: EDIT, reason: 'own setting' });
    assert.deepEqual(got.effective['knowledge.faqs'], { level: 'read', actions: ['view'], reason: 'own setting' });
    assert.deepEqual(got.effective['knowledge.sources'], {
      level: 'edit',
      actions: EDIT,
      reason: 'inherited from parent Knowledge (knowledge)',
    });
    assert.deepEqual(got.effective.integrations, { level: 'manage', actions: ALL, reason: 'own setting' });
    assert.deepEqual(got.effective.analytics, { level: 'none', actions: [], reason: 'no permission set' });
    assert.deepEqual(got.effective['analytics.csat'], {
      level: 'none',
      actions: [],
      reason: 'parent Analytics (analytics) is none',
    });
    assert.deepEqual(got.effective.account, { level: 'none', actions: [], reason: 'own setting' });
    // A parent at none makes every descendant none.
    for (const key of ['account.settings', 'account.users', 'account.api_keys', 'account.call_data', 'account.legal']) {
      assert.deepEqual(
        got.effective[key],
        { level: 'none', actions: [], reason: 'parent Account (account) is none' },
        key,
      );
    }

    // Replacing, not merging: a second PUT drops what it does not list.
    await request(app)
      .put(`/api/v1/users/${u.id}/permissions`)
      .set(t.admin)
      .send({ areas: { flows: 'read' } })
      .expect(200);
    const again = await permissionsOf(app, t.admin, u.id);
    assert.deepEqual(again.own, { flows: 'read' });
    assert.equal(again.effective.knowledge!.level, 'none');
    assert.equal(again.effective.flows!.level, 'read');
  });

  it('enforces inheritance on account/account.users for every parent × child level', async () => {
    const u = await buildUser(app, t);
    let own: Record<string, unknown> = {};
    const before = (await auditEvents(app, t, 'permissions.changed')).length;
    let accepted = 0;
    for (const parent of LEVELS) {
      for (const child of LEVELS) {
        const areas = { account: parent, 'account.users': child };
        const res = await request(app).put(`/api/v1/users/${u.id}/permissions`).set(t.admin).send({ areas });
        const allowed = LEVELS.indexOf(child) <= LEVELS.indexOf(parent);
        const label = `account=${parent}, account.users=${child}`;
        if (allowed) {
          assert.equal(res.status, 200, `${label}: ${JSON.stringify(res.body)}`);
          assert.deepEqual(res.body.own, areas, label);
          assert.equal(res.body.effective.account.level, parent, label);
          assert.equal(res.body.effective['account.users'].level, child, label);
          // Unset siblings inherit the parent.
          assert.equal(res.body.effective['account.legal'].level, parent, label);
          own = areas;
          accepted++;
        } else {
          assert.equal(res.status, 422, `${label}: ${JSON.stringify(res.body)}`);
          assert.equal(res.body.code, 'less_restrictive_than_parent', label);
          assert.match(
            res.body.detail,
            new RegExp(`"account\\.users" cannot be ${child}: its parent Account \\(account\\) is ${parent}\\b`),
            label,
          );
          assert.equal(res.body.parent, 'account', label);
          assert.equal(res.body.parentLevel, parent, label);
          const now = await permissionsOf(app, t.admin, u.id);
          assert.deepEqual(now.own, own, `${label} changed nothing`);
        }
      }
    }
    assert.equal(accepted, 10);
    // Only accepted changes are audited (the very first one from {} counts too).
    assert.equal((await auditEvents(app, t, 'permissions.changed')).length - before, 10);
  });

  it('refuses a sub-section above an unset top-level parent (none) whether or not the user has a template', async () => {
    // With a template that does not list knowledge, knowledge is none and a faqs setting is refused.
    const tpl = await request(app)
      .post('/api/v1/role-templates')
      .set(t.admin)
      .send({ name: 'Flows only', areas: { flows: 'read' } })
      .expect(201);
    const withTemplate = await buildUser(app, t, { templateId: tpl.body.id });
    const refused = await request(app)
      .put(`/api/v1/users/${withTemplate.id}/permissions`)
      .set(t.admin)
      .send({ areas: { 'knowledge.faqs': 'edit' } })
      .expect(422);
    assert.match(refused.body.detail, /parent Knowledge \(knowledge\) is none/);

    // Without a template knowledge is just as none ("no permission set"), so the same write breaks
    // the same rule. KNOWN BUG: setOwnPermissions (src/provisioning/accounts.ts) passes no base tree
    // to checkInheritance when the user has no template, so the write is accepted and silently
    // does nothing (effective knowledge.faqs stays none, "parent Knowledge (knowledge) is none").
    const bare = await buildUser(app, t);
    const res = await request(app)
      .put(`/api/v1/users/${bare.id}/permissions`)
      .set(t.admin)
      .send({ areas: { 'knowledge.faqs': 'edit' } });
    assert.equal(
      res.status,
      422,
      `a child above its none parent should be refused, got ${res.status} with effective ${JSON.stringify(res.body.effective?.['knowledge.faqs'])}`,
    );
    assert.match(res.body.detail, /parent Knowledge \(knowledge\) is none/);
  });

  it('reports an explicit action set with the highest preset it contains and its actions', async () => {
    const u = await buildUser(app, t);
    const res = await request(app)
      .put(`/api/v1/users/${u.id}/permissions`)
      .set(t.admin)
      .send({ areas: { knowledge: ['edit', 'view'], 'knowledge.faqs': ['view'] } })
      .expect(200);
    assert.deepEqual(res.body.own, { knowledge: ['view', 'edit'], 'knowledge.faqs': ['view'] });
    assert.deepEqual(res.body.effective.knowledge, { level: 'read', actions: ['view', 'edit'], reason: 'own setting' });
    assert.deepEqual(res.body.effective['knowledge.variants'], {
      level: 'read',
      actions: ['view', 'edit'],
      reason: 'inherited from parent Knowledge (knowledge)',
    });
    assert.deepEqual(res.body.effective['knowledge.faqs'], { level: 'read', actions: ['view'], reason: 'own setting' });

    const answers = await check(app, t.admin, {
      checks: [
        { userId: u.id, area: 'knowledge', action: 'edit' },
        { userId: u.id, area: 'knowledge', action: 'create' },
      ],
    }).expect(200);
    assert.deepEqual(
      answers.body.results.map((r: { allowed: boolean }) => r.allowed),
      [true, false],
    );
    assert.match(answers.body.results[1].reason, /knowledge is read \(view, edit\)/);

    // An action set is a sub-section's limit too: edit without delete refuses a child with delete.
    const refused = await request(app)
      .put(`/api/v1/users/${u.id}/permissions`)
      .set(t.admin)
      .send({ areas: { knowledge: ['view', 'edit'], 'knowledge.faqs': 'edit' } })
      .expect(422);
    assert.match(refused.body.detail, /parent Knowledge \(knowledge\) is read \(view, edit\)/);
  });

  it('refuses bad area settings with 400 listing every field', async () => {
    const u = await buildUser(app, t);
    await request(app)
      .put(`/api/v1/users/${u.id}/permissions`)
      .set(t.admin)
      .send({ areas: { flows: 'read' } })
      .expect(200);
    const bad = async (areas: Record<string, unknown>) => {
      const res = await request(app).put(`/api/v1/users/${u.id}/permissions`).set(t.admin).send({ areas }).expect(400);
      assert.equal(res.body.status, 400);
      // The offending areas (a path may point inside an action list, e.g. body.areas.knowledge.1).
      return [
        ...new Set((res.body.fields as { path: string }[]).map((f) => f.path.split('.').slice(0, 3).join('.'))),
      ].sort();
    };
    assert.deepEqual(await bad({ nope: 'read' }), ['body.areas.nope']);
    assert.deepEqual(await bad({ knowledge: 'write' }), ['body.areas.knowledge']);
    assert.deepEqual(await bad({ knowledge: 'manage' }), ['body.areas.knowledge']);
    assert.deepEqual(await bad({ knowledge: ['edit'] }), ['body.areas.knowledge']);
    assert.deepEqual(await bad({ knowledge: ['view', 'fly'] }), ['body.areas.knowledge']);
    // Several problems at once: each is listed, with its own message.
    const many = await request(app)
      .put(`/api/v1/users/${u.id}/permissions`)
      .set(t.admin)
      .send({ areas: { nope: 'read', knowledge: 'manage', voice: ['edit', 'delete'], flows: 'read' } })
      .expect(400);
    assert.equal(many.body.code, 'invalid_permissions');
    const byPath = Object.fromEntries(
      (many.body.fields as { path: string; message: string }[]).map((f) => [f.path, f.message]),
    );
    assert.deepEqual(Object.keys(byPath).sort(), ['body.areas.knowledge', 'body.areas.nope', 'body.areas.voice']);
    assert.match(byPath['body.areas.nope']!, /unknown area "nope"/);
    assert.match(byPath['body.areas.knowledge']!, /no manage/);
    assert.match(byPath['body.areas.voice']!, /must include view/);
    await request(app).put(`/api/v1/users/${u.id}/permissions`).set(t.admin).send({}).expect(400);
    // Nothing was changed by any of them.
    assert.deepEqual((await permissionsOf(app, t.admin, u.id)).own, { flows: 'read' });
  });

  it('lists a bad level together with the other bad areas of the same request', async () => {
    const u = await buildUser(app, t);
    const res = await request(app)
      .put(`/api/v1/users/${u.id}/permissions`)
      .set(t.admin)
      .send({ areas: { nope: 'read', knowledge: 'write', voice: ['edit'] } })
      .expect(400);
    const paths = [...new Set((res.body.fields as { path: string }[]).map((f) => f.path))].sort();
    // KNOWN BUG: the generic body schema (settingSchema in src/management/permissions.ts) rejects
    // "write" before parseSettings runs, so the answer lists only body.areas.knowledge and the
    // client learns about "nope" and voice's missing view only after fixing the level.
    assert.deepEqual(
      paths,
      ['body.areas.knowledge', 'body.areas.nope', 'body.areas.voice'],
      `every bad area should be listed at once, got ${JSON.stringify(res.body.fields)}`,
    );
  });

  it("refuses an own setting more permissive than the template's parent, and lets an own parent setting govern", async () => {
    const reviewer = await templateId(app, t, 'Read-only reviewer');
    const u = await buildUser(app, t, { templateId: reviewer });
    const refused = await request(app)
      .put(`/api/v1/users/${u.id}/permissions`)
      .set(t.admin)
      .send({ areas: { 'knowledge.faqs': 'edit' } })
      .expect(422);
    assert.equal(refused.body.code, 'less_restrictive_than_parent');
    assert.match(refused.body.detail, /parent Knowledge \(knowledge\) is read/);
    assert.deepEqual((await permissionsOf(app, t.admin, u.id)).own, {});

    // More restrictive than the template's parent is fine.
    const narrowed = await request(app)
      .put(`/api/v1/users/${u.id}/permissions`)
      .set(t.admin)
      .send({ areas: { 'knowledge.faqs': 'none' } })
      .expect(200);
    assert.deepEqual(narrowed.body.template, { id: reviewer, name: 'Read-only reviewer' });
    assert.equal(narrowed.body.effective['knowledge.faqs'].level, 'none');
    assert.equal(narrowed.body.effective['knowledge.sources'].level, 'read');

    // The user's own setting on the parent governs it and its unset descendants, over the template.
    const own = await request(app)
      .put(`/api/v1/users/${u.id}/permissions`)
      .set(t.admin)
      .send({ areas: { knowledge: 'edit', 'knowledge.faqs': 'edit' } })
      .expect(200);
    assert.deepEqual(own.body.effective.knowledge, { level: 'edit', actions: EDIT, reason: 'own setting' });
    assert.deepEqual(own.body.effective['knowledge.faqs'], { level: 'edit', actions: EDIT, reason: 'own setting' });
    assert.equal(own.body.effective['knowledge.sources'].level, 'edit');
    assert.deepEqual(own.body.effective.analytics, {
      level: 'read',
      actions: ['view'],
      reason: 'role template "Read-only reviewer"',
    });
    assert.deepEqual(own.body.effective.flows, {
      level: 'none',
      actions: [],
      reason: 'role template "Read-only reviewer" does not grant this area',
    });
  });

  it("a template edit reaches a referencing user at their next request, through the user's own key", async () => {
    const tpl = await request(app)
      .post('/api/v1/role-templates')
      .set(t.admin)
      .send({ name: 'Support', areas: { knowledge: 'read' } })
      .expect(201);
    const u = await buildUser(app, t, { templateId: tpl.body.id });
    const ask = { userId: u.id, area: 'deployments.environments', action: 'view' };
    const before = await check(app, u.auth, ask).expect(200);
    assert.equal(before.body.allowed, false);
    assert.match(before.body.reason, /Support/);

    await request(app)
      .put(`/api/v1/role-templates/${tpl.body.id}`)
      .set(t.admin)
      .send({ name: 'Support', areas: { knowledge: 'read', deployments: 'read' } })
      .expect(200);
    const after = await check(app, u.auth, ask).expect(200);
    assert.deepEqual(after.body, {
      ...ask,
      allowed: true,
      reason: 'view on deployments.environments: allowed: inherited from parent Deployments (deployments)',
    });
    const mine = await permissionsOf(app, u.auth, u.id);
    assert.deepEqual(mine.effective.deployments, {
      level: 'read',
      actions: ['view'],
      reason: 'role template "Support"',
    });

    // Narrowing the template takes effect just as fast.
    await request(app)
      .put(`/api/v1/role-templates/${tpl.body.id}`)
      .set(t.admin)
      .send({ name: 'Support', areas: { knowledge: 'read' } })
      .expect(200);
    assert.equal((await check(app, u.auth, ask).expect(200)).body.allowed, false);
  });

  it('answers area checks one at a time or in batches, in order, each with its reason', async () => {
    const editor = await templateId(app, t, 'Knowledge editor');
    const u = await buildUser(app, t, { templateId: editor, areas: { analytics: 'none' } });
    const admin = await buildUser(app, t, { role: 'admin' });
    const ghost = randomUUID();

    const one = await check(app, t.admin, { userId: u.id, area: 'knowledge', action: 'edit' }).expect(200);
    assert.deepEqual(one.body, {
      userId: u.id,
      area: 'knowledge',
      action: 'edit',
      allowed: true,
      reason: 'edit on knowledge: allowed: role template "Knowledge editor"',
    });

    const checks = [
      { userId: u.id, area: 'knowledge.faqs', action: 'delete' },
      { userId: admin.id, area: 'account.users', action: 'manage' },
      { userId: u.id, area: 'analytics', action: 'view' },
      { userId: ghost, area: 'knowledge', action: 'view' },
      { userId: u.id, area: 'analytics.csat', action: 'view' },
      { userId: u.id, area: 'deployments', action: 'view' },
      { userId: u.id, area: 'flows', action: 'view' },
      { userId: u.id, area: 'knowledge', action: 'manage' },
      { userId: u.id, area: 'behavior.models', action: 'view' },
    ];
    const batch = await check(app, t.admin, { checks }).expect(200);
    const results = batch.body.results as {
      userId: string;
      area: string;
      action: string;
      allowed: boolean;
      reason: string;
    }[];
    assert.deepEqual(
      results.map(({ userId, area, action }) => ({ userId, area, action })),
      checks,
    );
    assert.deepEqual(
      results.map((r) => r.allowed),
      [true, true, false, false, false, false, false, false, true],
    );
    const reasons = results.map((r) => r.reason);
    assert.equal(reasons[0], 'delete on knowledge.faqs: allowed: inherited from parent Knowledge (knowledge)');
    assert.match(reasons[1]!, /admin/);
    assert.equal(reasons[2], 'view on analytics: denied: own setting');
    assert.equal(reasons[4], 'view on analytics.csat: denied: parent Analytics (analytics) is none');
    assert.equal(reasons[5], 'view on deployments: denied: role template "Knowledge editor"');
    assert.equal(reasons[6], 'view on flows: denied: role template "Knowledge editor" does not grant this area');
    assert.match(reasons[7]!, /^manage on knowledge: denied: knowledge is edit/);

    const unknown = await check(app, t.admin, {
      checks: [checks[0], { userId: u.id, area: 'knowledge.nope', action: 'view' }],
    }).expect(400);
    assert.equal(unknown.body.code, 'unknown_area');
    assert.deepEqual(
      unknown.body.fields.map((f: { path: string }) => f.path),
      ['body.checks.1.area'],
    );
    const unknownOne = await check(app, t.admin, { userId: u.id, area: 'nowhere', action: 'view' }).expect(400);
    assert.deepEqual(
      unknownOne.body.fields.map((f: { path: string }) => f.path),
      ['body.area'],
    );
    await check(app, t.admin, { userId: u.id, area: 'knowledge', action: 'fly' }).expect(400);
    await check(app, t.admin, { checks: [] }).expect(400);
  });

  it('an admin user holds everything, with a reason saying so', async () => {
    const admin = await buildUser(app, t, { role: 'admin' });
    const p = await permissionsOf(app, t.admin, admin.id);
    assert.deepEqual(Object.keys(p.effective).sort(), [...keys.keys()].sort());
    for (const [key, actions] of keys) {
      assert.deepEqual(p.effective[key]!.actions, actions, key);
      assert.match(p.effective[key]!.reason, /admin/, key);
    }
    assert.equal(p.effective['account.users']!.level, 'manage');
    assert.equal(p.effective.knowledge!.level, 'edit');
    const res = await check(app, t.admin, { userId: admin.id, area: 'integrations', action: 'manage' }).expect(200);
    assert.equal(res.body.allowed, true);
    assert.match(res.body.reason, /admin/);
  });

  it('a suspended user holds nothing, and their own key is refused at the next request', async () => {
    const u = await buildUser(app, t, {
      templateId: await templateId(app, t, 'Full developer'),
      areas: { account: 'manage' },
    });
    const active = await permissionsOf(app, u.auth, u.id);
    assert.equal(active.effective.knowledge!.level, 'edit');

    await request(app).patch(`/api/v1/users/${u.id}`).set(t.admin).send({ status: 'suspended' }).expect(200);
    const p = await permissionsOf(app, t.admin, u.id);
    for (const [key, v] of Object.entries(p.effective)) {
      assert.deepEqual({ level: v.level, actions: v.actions }, { level: 'none', actions: [] }, key);
      assert.match(v.reason, /suspended/, key);
    }
    const res = await check(app, t.admin, { userId: u.id, area: 'knowledge', action: 'view' }).expect(200);
    assert.equal(res.body.allowed, false);
    assert.match(res.body.reason, /suspended/);
    const refused = await request(app).get(`/api/v1/users/${u.id}/permissions`).set(u.auth).expect(403);
    assert.equal(refused.body.code, 'user_not_active');

    await request(app).patch(`/api/v1/users/${u.id}`).set(t.admin).send({ status: 'active' }).expect(200);
    assert.equal((await permissionsOf(app, u.auth, u.id)).effective.knowledge!.level, 'edit');

    // An invited user holds nothing either, whatever their template says.
    const inv = await request(app)
      .post('/api/v1/invitations')
      .set(t.admin)
      .send({ email: 'invitee@example.com', role: 'member', templateId: await templateId(app, t, 'Full developer') })
      .expect(201);
    const invited = await permissionsOf(app, t.admin, inv.body.user.id);
    assert.deepEqual(invited.template, { id: await templateId(app, t, 'Full developer'), name: 'Full developer' });
    for (const [key, v] of Object.entries(invited.effective)) {
      assert.deepEqual({ level: v.level, actions: v.actions }, { level: 'none', actions: [] }, key);
      assert.match(v.reason, /invited/, key);
    }
  });

  it('a member without manage on account.users reads only their own permissions and changes none', async () => {
    const u = await buildUser(app, t, { areas: { account: 'edit', knowledge: 'read' } });
    const other = await buildUser(app, t, { areas: { flows: 'read' } });
    const mine = await permissionsOf(app, u.auth, u.id);
    assert.equal(mine.effective['account.users']!.level, 'edit');
    assert.equal(mine.effective.knowledge!.level, 'read');

    const read = await request(app).get(`/api/v1/users/${other.id}/permissions`).set(u.auth).expect(403);
    assert.equal(read.body.status, 403);
    await request(app)
      .put(`/api/v1/users/${other.id}/permissions`)
      .set(u.auth)
      .send({ areas: { flows: 'none' } })
      .expect(403);
    await request(app)
      .put(`/api/v1/users/${u.id}/permissions`)
      .set(u.auth)
      .send({ areas: { account: 'manage' } })
      .expect(403);
    await check(app, u.auth, { userId: other.id, area: 'flows', action: 'view' }).expect(403);
    const self = await check(app, u.auth, { userId: u.id, area: 'knowledge', action: 'view' }).expect(200);
    assert.equal(self.body.allowed, true);
    assert.deepEqual((await permissionsOf(app, t.admin, other.id)).own, { flows: 'read' });
    assert.deepEqual((await permissionsOf(app, t.admin, u.id)).own, { account: 'edit', knowledge: 'read' });
  });

  it('a member with manage on account.users changes members within their own reach, never beyond, never an admin', async () => {
    // Manage on account.users needs at least manage on account: a child is never less restrictive.
    const probe = await buildUser(app, t);
    const tooMuch = await request(app)
      .put(`/api/v1/users/${probe.id}/permissions`)
      .set(t.admin)
      .send({ areas: { account: 'edit', 'account.users': 'manage' } })
      .expect(422);
    assert.match(tooMuch.body.detail, /Account \(account\) is edit/);

    const manager = await buildUser(app, t, {
      areas: { account: 'manage', 'account.legal': 'read', knowledge: 'read' },
    });
    const target = await buildUser(app, t);
    const admin = await buildUser(app, t, { role: 'admin' });

    const ok = await request(app)
      .put(`/api/v1/users/${target.id}/permissions`)
      .set(manager.auth)
      .send({ areas: { knowledge: 'read', account: 'edit', 'account.legal': 'read' } })
      .expect(200);
    assert.equal(ok.body.effective['account.users'].level, 'edit');
    assert.equal((await permissionsOf(app, manager.auth, target.id)).effective.knowledge!.level, 'read');

    for (const areas of [
      { knowledge: 'edit' },
      { flows: 'read' },
      { account: 'manage' },
      { knowledge: ['view', 'edit'] },
    ]) {
      const res = await request(app)
        .put(`/api/v1/users/${target.id}/permissions`)
        .set(manager.auth)
        .send({ areas })
        .expect(403);
      assert.equal(res.body.code, 'beyond_own_permissions', JSON.stringify(areas));
      assert.match(res.body.detail, new RegExp(Object.keys(areas)[0]!.replace('.', '\\.')), JSON.stringify(areas));
    }
    // The template is counted too: handing out more through it is just as refused.
    await request(app)
      .patch(`/api/v1/users/${target.id}`)
      .set(manager.auth)
      .send({ templateId: await templateId(app, t, 'Full developer') })
      .expect(403);
    assert.deepEqual((await permissionsOf(app, t.admin, target.id)).own, {
      knowledge: 'read',
      account: 'edit',
      'account.legal': 'read',
    });

    const onAdmin = await request(app)
      .put(`/api/v1/users/${admin.id}/permissions`)
      .set(manager.auth)
      .send({ areas: { knowledge: 'read' } })
      .expect(403);
    assert.equal(onAdmin.body.code, 'admin_required');
    assert.deepEqual((await permissionsOf(app, t.admin, admin.id)).own, {});

    // The manager's reach is read live: take manage away and the next request is refused.
    await request(app)
      .put(`/api/v1/users/${manager.id}/permissions`)
      .set(t.admin)
      .send({ areas: { account: 'edit', knowledge: 'read' } })
      .expect(200);
    await request(app)
      .put(`/api/v1/users/${target.id}/permissions`)
      .set(manager.auth)
      .send({ areas: { knowledge: 'read' } })
      .expect(403);
  });

  it('records permissions.changed with the settings before and after, and who acted', async () => {
    const manager = await buildUser(app, t, { areas: { account: 'manage', knowledge: 'edit' } });
    const u = await buildUser(app, t);
    await request(app)
      .put(`/api/v1/users/${u.id}/permissions`)
      .set(t.admin)
      .send({ areas: { knowledge: 'read' } })
      .expect(200);
    await request(app)
      .put(`/api/v1/users/${u.id}/permissions`)
      .set(manager.auth)
      .send({ areas: { knowledge: 'edit', 'knowledge.faqs': ['view'] } })
      .expect(200);
    const events = (await auditEvents(app, t, 'permissions.changed')).filter((e) => e.entity.id === u.id);
    assert.equal(events.length, 2);
    const [second, first] = events;
    assert.deepEqual(first!.before, { areas: {} });
    assert.deepEqual(first!.after, { areas: { knowledge: 'read' } });
    assert.deepEqual(first!.entity, { type: 'user', id: u.id, name: u.email });
    assert.deepEqual(second!.before, { areas: { knowledge: 'read' } });
    assert.deepEqual(second!.after, { areas: { knowledge: 'edit', 'knowledge.faqs': ['view'] } });
    assert.deepEqual(second!.actor, { type: 'user', id: manager.id, display: manager.email });
  });

  it("never shows or changes another tenant's user", async () => {
    const other = await buildTenant();
    const u = await buildUser(app, t, { areas: { knowledge: 'edit' } });
    const get = await request(app).get(`/api/v1/users/${u.id}/permissions`).set(other.admin).expect(404);
    assert.equal(get.body.code, 'user_not_found');
    await request(app)
      .put(`/api/v1/users/${u.id}/permissions`)
      .set(other.admin)
      .send({ areas: { knowledge: 'none' } })
      .expect(404);
    const res = await check(app, other.admin, { userId: u.id, area: 'knowledge', action: 'view' }).expect(200);
    assert.equal(res.body.allowed, false);
    assert.deepEqual((await permissionsOf(app, t.admin, u.id)).own, { knowledge: 'edit' });
    // And the same check in the user's own tenant is allowed: the refusal above is the tenant boundary.
    assert.equal(
      (await check(app, t.admin, { userId: u.id, area: 'knowledge', action: 'view' }).expect(200)).body.allowed,
      true,
    );
  });
});
