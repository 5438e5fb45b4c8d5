import assert from 'node:assert/strict';
import request from 'supertest';
import type { Express } from 'express';
import { buildTenant, type TestTenant } from '../../support/factories.js';
import { useApp, useTenant } from '../../support/harness.js';
import { auditEvents, buildUser, templateId } from '../../support/management.js';

type Auth = { Authorization: string };
interface Template {
  id: string;
  name: string;
  areas: Record<string, unknown>;
  builtin: boolean;
  usersCount?: number;
  createdAt: string;
  updatedAt: string;
}

/** Seed 002's four common configurations, as every fresh tenant should have them. */
const BUILTINS: Record<string, Record<string, unknown>> = {
  'Full developer': {
    analytics: 'edit',
    behavior: 'edit',
    knowledge: 'edit',
    flows: 'edit',
    tools: 'edit',
    voice: 'edit',
    messaging: 'edit',
    integrations: 'edit',
    deployments: 'edit',
    account: 'read',
  },
  'Knowledge editor': {
    analytics: 'read',
    knowledge: 'edit',
    behavior: 'read',
    voice: 'read',
    messaging: 'read',
    deployments: 'none',
    account: 'none',
  },
  'Operations manager': {
    analytics: 'edit',
    behavior: 'read',
    knowledge: 'read',
    voice: 'read',
    messaging: 'read',
    deployments: 'edit',
    account: 'edit',
  },
  'Read-only reviewer': {
    analytics: 'read',
    behavior: 'read',
    knowledge: 'read',
    voice: 'read',
    messaging: 'read',
    deployments: 'read',
    account: 'read',
  },
};

const EDIT = ['view', 'create', 'edit', 'delete'];

async function list(app: Express, auth: Auth): Promise<Template[]> {
  return (await request(app).get('/api/v1/role-templates').set(auth).expect(200)).body.items as Template[];
}

async function create(app: Express, t: TestTenant, name: string, areas: Record<string, unknown>): Promise<Template> {
  return (await request(app).post('/api/v1/role-templates').set(t.admin).send({ name, areas }).expect(201))
    .body as Template;
}

/** What a user can actually do, area by area, without the reasons. */
async function holdings(app: Express, t: TestTenant, userId: string) {
  const res = await request(app).get(`/api/v1/users/${userId}/permissions`).set(t.admin).expect(200);
  return Object.fromEntries(
    Object.entries(res.body.effective as Record<string, { level: string; actions: string[] }>).map(([k, v]) => [
      k,
      { level: v.level, actions: v.actions },
    ]),
  );
}

async function userTemplate(app: Express, t: TestTenant, userId: string): Promise<string | null> {
  return (await request(app).get(`/api/v1/users/${userId}`).set(t.admin).expect(200)).body.templateId;
}

describe('management API: role templates', () => {
  const app = useApp();
  const t = useTenant();

  it("seeds seed 002's four common configurations into a fresh tenant", async () => {
    const items = await list(app, t.admin);
    assert.deepEqual(
      items.map((x) => x.name),
      ['Full developer', 'Knowledge editor', 'Operations manager', 'Read-only reviewer'],
    );
    for (const item of items) {
      assert.deepEqual(item.areas, BUILTINS[item.name], item.name);
      assert.equal(item.builtin, true, item.name);
      assert.equal(item.usersCount, 0, item.name);
    }
    // Each tenant has its own copies.
    const other = await list(app, (await buildTenant()).admin);
    assert.deepEqual(
      other.map((x) => x.name),
      items.map((x) => x.name),
    );
    assert.equal(other.filter((x) => items.some((y) => y.id === x.id)).length, 0);

    // What a Knowledge editor can do: knowledge edit, deployments none, and none where it says nothing.
    const u = await buildUser(app, t, { templateId: items[1]!.id });
    const h = await holdings(app, t, u.id);
    assert.deepEqual(h.knowledge, { level: 'edit', actions: EDIT });
    assert.deepEqual(h['knowledge.faqs'], { level: 'edit', actions: EDIT });
    assert.deepEqual(h.deployments, { level: 'none', actions: [] });
    assert.deepEqual(h['deployments.environments'], { level: 'none', actions: [] });
    assert.deepEqual(h.flows, { level: 'none', actions: [] });
    assert.deepEqual(h.analytics, { level: 'read', actions: ['view'] });
  });

  it('creates, reads, lists with usersCount, updates and deletes a template', async () => {
    const res = await request(app)
      .post('/api/v1/role-templates')
      .set(t.admin)
      .send({
        name: '  Support lead ',
        areas: { 'knowledge.faqs': ['edit', 'view'], knowledge: 'edit', analytics: 'read' },
      })
      .expect(201);
    const created = res.body as Template;
    assert.equal(res.headers.location, `https://roster.test/api/v1/role-templates/${created.id}`);
    assert.equal(created.name, 'Support lead');
    assert.deepEqual(created.areas, { analytics: 'read', knowledge: 'edit', 'knowledge.faqs': ['view', 'edit'] });
    assert.equal(created.builtin, false);
    assert.equal(created.usersCount, 0);

    const got = await request(app).get(`/api/v1/role-templates/${created.id}`).set(t.admin).expect(200);
    assert.deepEqual(got.body, created);

    const a = await buildUser(app, t, { templateId: created.id });
    await buildUser(app, t, { templateId: created.id });
    await buildUser(app, t, { templateId: await templateId(app, t, 'Knowledge editor') });
    const items = await list(app, t.admin);
    assert.deepEqual(
      items.map((x) => x.name),
      ['Full developer', 'Knowledge editor', 'Operations manager', 'Read-only reviewer', 'Support lead'],
    );
    assert.deepEqual(Object.fromEntries(items.map((x) => [x.name, x.usersCount])), {
      'Full developer': 0,
      'Knowledge editor': 1,
      'Operations manager': 0,
      'Read-only reviewer': 0,
      'Support lead': 2,
    });
    assert.equal(
      (await request(app).get(`/api/v1/role-templates/${created.id}`).set(t.admin).expect(200)).body.usersCount,
      2,
    );
    assert.deepEqual((await holdings(app, t, a.id))['knowledge.faqs'], { level: 'read', actions: ['view', 'edit'] });

    const updated = await request(app)
      .put(`/api/v1/role-templates/${created.id}`)
      .set(t.admin)
      .send({ name: 'Support', areas: { flows: 'read' } })
      .expect(200);
    assert.equal(updated.body.name, 'Support');
    assert.deepEqual(updated.body.areas, { flows: 'read' });
    assert.equal(updated.body.usersCount, 2);
    assert.equal(updated.body.createdAt, created.createdAt);
    assert.ok(Date.parse(updated.body.updatedAt) >= Date.parse(created.updatedAt));
    assert.deepEqual(
      (await request(app).get(`/api/v1/role-templates/${created.id}`).set(t.admin).expect(200)).body.areas,
      { flows: 'read' },
    );
    const h = await holdings(app, t, a.id);
    assert.equal(h.flows!.level, 'read');
    assert.equal(h.knowledge!.level, 'none');

    // A built-in is edited like any other.
    const reviewer = await templateId(app, t, 'Read-only reviewer');
    const edited = await request(app)
      .put(`/api/v1/role-templates/${reviewer}`)
      .set(t.admin)
      .send({ name: 'Read-only reviewer', areas: { knowledge: 'read' } })
      .expect(200);
    assert.equal(edited.body.builtin, true);
    assert.deepEqual(edited.body.areas, { knowledge: 'read' });

    const unused = await create(app, t, 'Temporary', { flows: 'read' });
    await request(app).delete(`/api/v1/role-templates/${unused.id}`).set(t.admin).expect(204);
    const gone = await request(app).get(`/api/v1/role-templates/${unused.id}`).set(t.admin).expect(404);
    assert.equal(gone.body.code, 'template_not_found');
    await request(app).delete(`/api/v1/role-templates/${unused.id}`).set(t.admin).expect(404);
    await request(app)
      .put(`/api/v1/role-templates/${unused.id}`)
      .set(t.admin)
      .send({ name: 'Temporary', areas: {} })
      .expect(404);
    assert.ok(!(await list(app, t.admin)).some((x) => x.id === unused.id));
  });

  it('refuses a duplicate name regardless of case, on create and on rename', async () => {
    const mine = await create(app, t, 'Support lead', { flows: 'read' });
    for (const name of ['support LEAD', 'Support lead', ' Knowledge Editor ']) {
      const res = await request(app).post('/api/v1/role-templates').set(t.admin).send({ name, areas: {} }).expect(409);
      assert.equal(res.body.code, 'template_name_taken', name);
    }
    const rename = await request(app)
      .put(`/api/v1/role-templates/${mine.id}`)
      .set(t.admin)
      .send({ name: 'READ-ONLY reviewer', areas: { flows: 'read' } })
      .expect(409);
    assert.equal(rename.body.code, 'template_name_taken');
    // Renaming a template to its own name in another case is fine.
    const recased = await request(app)
      .put(`/api/v1/role-templates/${mine.id}`)
      .set(t.admin)
      .send({ name: 'Support Lead', areas: { flows: 'read' } })
      .expect(200);
    assert.equal(recased.body.name, 'Support Lead');
    assert.equal((await list(app, t.admin)).length, 5);
    // Names are per tenant.
    const other = await buildTenant();
    await request(app)
      .post('/api/v1/role-templates')
      .set(other.admin)
      .send({ name: 'Support lead', areas: {} })
      .expect(201);
  });

  it('refuses bad areas with 400 listing each, and a template breaking inheritance with 422', async () => {
    const bad = await request(app)
      .post('/api/v1/role-templates')
      .set(t.admin)
      .send({ name: 'Bad', areas: { nope: 'read', knowledge: 'manage', voice: ['edit'] } })
      .expect(400);
    assert.deepEqual((bad.body.fields as { path: string }[]).map((f) => f.path).sort(), [
      'body.areas.knowledge',
      'body.areas.nope',
      'body.areas.voice',
    ]);
    await request(app)
      .post('/api/v1/role-templates')
      .set(t.admin)
      .send({ name: 'Bad', areas: { knowledge: 'write' } })
      .expect(400);
    const blank = await request(app)
      .post('/api/v1/role-templates')
      .set(t.admin)
      .send({ name: '   ', areas: {} })
      .expect(400);
    assert.deepEqual(
      blank.body.fields.map((f: { path: string }) => f.path),
      ['body.name'],
    );
    await request(app).post('/api/v1/role-templates').set(t.admin).send({ name: 'No areas' }).expect(400);

    const broken = await request(app)
      .post('/api/v1/role-templates')
      .set(t.admin)
      .send({ name: 'Broken', areas: { knowledge: 'read', 'knowledge.faqs': 'edit' } })
      .expect(422);
    assert.equal(broken.body.code, 'less_restrictive_than_parent');
    assert.match(broken.body.detail, /"knowledge\.faqs" cannot be edit: its parent Knowledge \(knowledge\) is read/);
    const actionSet = await request(app)
      .post('/api/v1/role-templates')
      .set(t.admin)
      .send({ name: 'Broken', areas: { account: ['view', 'manage'], 'account.users': 'edit' } })
      .expect(422);
    assert.match(actionSet.body.detail, /Account \(account\)/);
    assert.equal((await list(app, t.admin)).length, 4);

    const mine = await create(app, t, 'Support', { knowledge: 'edit', 'knowledge.faqs': 'read' });
    await request(app)
      .put(`/api/v1/role-templates/${mine.id}`)
      .set(t.admin)
      .send({ name: 'Support', areas: { knowledge: 'read', 'knowledge.faqs': 'edit' } })
      .expect(422);
    await request(app)
      .put(`/api/v1/role-templates/${mine.id}`)
      .set(t.admin)
      .send({ name: 'Support', areas: { flows: 'fly' } })
      .expect(400);
    assert.deepEqual(
      (await request(app).get(`/api/v1/role-templates/${mine.id}`).set(t.admin).expect(200)).body.areas,
      { knowledge: 'edit', 'knowledge.faqs': 'read' },
    );
  });

  it('refuses to delete a template in use, listing its users, and changes nothing', async () => {
    const tpl = await create(app, t, 'Support', { knowledge: 'read' });
    const a = await buildUser(app, t, { templateId: tpl.id });
    const b = await buildUser(app, t, { templateId: tpl.id });
    await buildUser(app, t, { templateId: await templateId(app, t, 'Full developer') });
    const res = await request(app).delete(`/api/v1/role-templates/${tpl.id}`).set(t.admin).expect(409);
    assert.equal(res.body.code, 'template_in_use');
    assert.match(res.body.detail, /Support/);
    const expected = [a, b].map((u) => ({ id: u.id, email: u.email })).sort((x, y) => (x.id < y.id ? -1 : 1));
    assert.deepEqual(
      [...res.body.users].sort((x: { id: string }, y: { id: string }) => (x.id < y.id ? -1 : 1)),
      expected,
    );
    await request(app).delete(`/api/v1/role-templates/${tpl.id}`).query({ detach: false }).set(t.admin).expect(409);

    const still = await request(app).get(`/api/v1/role-templates/${tpl.id}`).set(t.admin).expect(200);
    assert.equal(still.body.usersCount, 2);
    assert.equal(await userTemplate(app, t, a.id), tpl.id);
    assert.equal((await holdings(app, t, b.id)).knowledge!.level, 'read');
    assert.equal((await auditEvents(app, t, 'template.deleted')).length, 0);
  });

  it('?reassign=<id> moves every user to the other template before deleting', async () => {
    const from = await create(app, t, 'Support', { knowledge: 'read' });
    const to = await templateId(app, t, 'Knowledge editor');
    const a = await buildUser(app, t, { templateId: from.id });
    const b = await buildUser(app, t, { templateId: from.id, areas: { flows: 'none' } });

    const missing = await request(app)
      .delete(`/api/v1/role-templates/${from.id}`)
      .query({ reassign: 'no-such-template' })
      .set(t.admin)
      .expect(422);
    assert.equal(missing.body.code, 'unknown_template');
    await request(app)
      .delete(`/api/v1/role-templates/${from.id}`)
      .query({ reassign: from.id })
      .set(t.admin)
      .expect(422);
    await request(app)
      .delete(`/api/v1/role-templates/${from.id}`)
      .query({ reassign: to, detach: true })
      .set(t.admin)
      .expect(400);
    assert.equal(await userTemplate(app, t, a.id), from.id);

    await request(app).delete(`/api/v1/role-templates/${from.id}`).query({ reassign: to }).set(t.admin).expect(204);
    await request(app).get(`/api/v1/role-templates/${from.id}`).set(t.admin).expect(404);
    assert.equal(await userTemplate(app, t, a.id), to);
    assert.equal(await userTemplate(app, t, b.id), to);
    assert.equal((await request(app).get(`/api/v1/role-templates/${to}`).set(t.admin).expect(200)).body.usersCount, 2);
    const h = await holdings(app, t, a.id);
    assert.equal(h.knowledge!.level, 'edit');
    const perms = await request(app).get(`/api/v1/users/${b.id}/permissions`).set(t.admin).expect(200);
    assert.deepEqual(perms.body.template, { id: to, name: 'Knowledge editor' });
    assert.deepEqual(perms.body.own, { flows: 'none' });
  });

  it('?detach=true leaves every affected user holding exactly what they held, and clears their template', async () => {
    const tpl = await create(app, t, 'Support', {
      knowledge: 'edit',
      'knowledge.sources': 'read',
      analytics: ['view', 'edit'],
      account: 'read',
      'account.legal': 'none',
    });
    const users = [
      await buildUser(app, t, { templateId: tpl.id }),
      await buildUser(app, t, { templateId: tpl.id, areas: { knowledge: 'read' } }),
      await buildUser(app, t, { templateId: tpl.id, areas: { 'knowledge.faqs': 'read', flows: 'edit' } }),
      await buildUser(app, t, { templateId: tpl.id, areas: { 'analytics.kpis': ['view'], account: 'none' } }),
    ];
    const bystander = await buildUser(app, t, { templateId: await templateId(app, t, 'Read-only reviewer') });
    // Narrowed after the users' own settings were made: what they hold is limited by it now.
    await request(app)
      .put(`/api/v1/role-templates/${tpl.id}`)
      .set(t.admin)
      .send({
        name: 'Support',
        areas: {
          knowledge: 'read',
          'knowledge.sources': 'read',
          analytics: 'none',
          account: 'read',
          'account.legal': 'none',
        },
      })
      .expect(200);
    const before = await Promise.all(users.map((u) => holdings(app, t, u.id)));
    const bystanderBefore = await holdings(app, t, bystander.id);
    assert.equal(before[0]!.knowledge!.level, 'read');
    assert.equal(before[2]!['knowledge.faqs']!.level, 'read');

    await request(app).delete(`/api/v1/role-templates/${tpl.id}`).query({ detach: 'true' }).set(t.admin).expect(204);
    await request(app).get(`/api/v1/role-templates/${tpl.id}`).set(t.admin).expect(404);
    for (const [i, u] of users.entries()) {
      assert.equal(await userTemplate(app, t, u.id), null, `user ${i} template`);
      assert.deepEqual(await holdings(app, t, u.id), before[i], `user ${i} holds the same`);
    }
    assert.deepEqual(await holdings(app, t, bystander.id), bystanderBefore);
    const own = await request(app).get(`/api/v1/users/${users[0]!.id}/permissions`).set(t.admin).expect(200);
    assert.equal(own.body.template, null);
    assert.equal(own.body.effective.knowledge.reason, 'own setting');
    const detached = await auditEvents(app, t, 'template.users_detached');
    assert.equal(detached.length, 1);
  });

  it('a member managing users creates and edits templates only within their own permissions', async () => {
    const manager = await buildUser(app, t, { areas: { account: 'manage', knowledge: 'edit', flows: 'read' } });
    const plain = await buildUser(app, t, { areas: { account: 'edit', knowledge: 'edit' } });

    const mine = await request(app)
      .post('/api/v1/role-templates')
      .set(manager.auth)
      .send({ name: 'Knowledge helper', areas: { knowledge: 'edit', flows: 'read' } })
      .expect(201);
    for (const areas of [{ knowledge: 'edit', flows: 'edit' }, { analytics: 'read' }, { integrations: ['view'] }]) {
      const res = await request(app)
        .post('/api/v1/role-templates')
        .set(manager.auth)
        .send({ name: 'Too much', areas })
        .expect(403);
      assert.equal(res.body.code, 'beyond_own_permissions', JSON.stringify(areas));
    }
    const widen = await request(app)
      .put(`/api/v1/role-templates/${mine.body.id}`)
      .set(manager.auth)
      .send({ name: 'Knowledge helper', areas: { knowledge: 'edit', analytics: 'read' } })
      .expect(403);
    assert.equal(widen.body.code, 'beyond_own_permissions');
    // A template granting more than the manager holds may be narrowed (nothing is granted), but
    // not widened further nor handed out by reassigning.
    const dev = await templateId(app, t, 'Full developer');
    await request(app)
      .put(`/api/v1/role-templates/${dev}`)
      .set(manager.auth)
      .send({ name: 'Full developer', areas: { analytics: 'edit', knowledge: 'read' } })
      .expect(200);
    const wider = await request(app)
      .put(`/api/v1/role-templates/${dev}`)
      .set(manager.auth)
      .send({ name: 'Full developer', areas: { analytics: 'edit', knowledge: 'read', voice: 'edit' } })
      .expect(403);
    assert.equal(wider.body.code, 'beyond_own_permissions');
    const from = await create(app, t, 'Old', { knowledge: 'read' });
    await buildUser(app, t, { templateId: from.id });
    await request(app)
      .delete(`/api/v1/role-templates/${from.id}`)
      .query({ reassign: dev })
      .set(manager.auth)
      .expect(403);
    assert.deepEqual((await request(app).get(`/api/v1/role-templates/${dev}`).set(t.admin).expect(200)).body.areas, {
      analytics: 'edit',
      knowledge: 'read',
    });
    assert.equal(
      (await request(app).get(`/api/v1/role-templates/${from.id}`).set(t.admin).expect(200)).body.usersCount,
      1,
    );

    // Without manage on account.users a member changes no template.
    await request(app)
      .post('/api/v1/role-templates')
      .set(plain.auth)
      .send({ name: 'Nope', areas: { knowledge: 'read' } })
      .expect(403);
    await request(app)
      .put(`/api/v1/role-templates/${mine.body.id}`)
      .set(plain.auth)
      .send({ name: 'Nope', areas: {} })
      .expect(403);
    await request(app).delete(`/api/v1/role-templates/${mine.body.id}`).set(plain.auth).expect(403);
    const names = (await list(app, t.admin)).map((x) => x.name);
    assert.ok(names.includes('Knowledge helper') && !names.includes('Too much') && !names.includes('Nope'));
  });

  it('records template.created, template.updated and template.deleted', async () => {
    const manager = await buildUser(app, t, { areas: { account: 'manage', knowledge: 'edit' } });
    const created = await request(app)
      .post('/api/v1/role-templates')
      .set(manager.auth)
      .send({ name: 'Support', areas: { knowledge: 'read' } })
      .expect(201);
    await request(app)
      .put(`/api/v1/role-templates/${created.body.id}`)
      .set(t.admin)
      .send({ name: 'Support desk', areas: { knowledge: 'edit' } })
      .expect(200);
    await request(app).delete(`/api/v1/role-templates/${created.body.id}`).set(t.admin).expect(204);

    const [c] = await auditEvents(app, t, 'template.created');
    assert.deepEqual(c!.entity, { type: 'role_template', id: created.body.id, name: 'Support' });
    assert.equal(c!.before, null);
    assert.deepEqual(c!.after, { name: 'Support', areas: { knowledge: 'read' } });
    assert.deepEqual(c!.actor, { type: 'user', id: manager.id, display: manager.email });
    const [u] = await auditEvents(app, t, 'template.updated');
    assert.deepEqual(u!.before, { name: 'Support', areas: { knowledge: 'read' } });
    assert.deepEqual(u!.after, { name: 'Support desk', areas: { knowledge: 'edit' } });
    const [d] = await auditEvents(app, t, 'template.deleted');
    assert.deepEqual(d!.before, { name: 'Support desk', areas: { knowledge: 'edit' } });
    assert.equal(d!.after, null);
    assert.equal(d!.entity.id, created.body.id);
    // Refused changes leave no trace.
    await request(app)
      .post('/api/v1/role-templates')
      .set(t.admin)
      .send({ name: 'support DESK ', areas: { knowledge: 'read', 'knowledge.faqs': 'edit' } })
      .expect(422);
    assert.equal((await auditEvents(app, t, 'template.created')).length, 1);
  });

  it("never shows or changes another tenant's templates", async () => {
    const other = await buildTenant();
    const tpl = await create(app, t, 'Support', { knowledge: 'read' });
    await request(app).get(`/api/v1/role-templates/${tpl.id}`).set(other.admin).expect(404);
    await request(app)
      .put(`/api/v1/role-templates/${tpl.id}`)
      .set(other.admin)
      .send({ name: 'Mine now', areas: {} })
      .expect(404);
    await request(app).delete(`/api/v1/role-templates/${tpl.id}`).set(other.admin).expect(404);
    assert.ok(!(await list(app, other.admin)).some((x) => x.id === tpl.id));

    // Another tenant's template can be neither assigned nor reassigned to.
    const theirs = await buildUser(app, other);
    await request(app).patch(`/api/v1/users/${theirs.id}`).set(other.admin).send({ templateId: tpl.id }).expect(422);
    const otherTpl = await create(app, other, 'Theirs', { flows: 'read' });
    await buildUser(app, other, { templateId: otherTpl.id });
    await request(app)
      .delete(`/api/v1/role-templates/${otherTpl.id}`)
      .query({ reassign: tpl.id })
      .set(other.admin)
      .expect(422);

    const after = await request(app).get(`/api/v1/role-templates/${tpl.id}`).set(t.admin).expect(200);
    assert.equal(after.body.name, 'Support');
    assert.deepEqual(after.body.areas, { knowledge: 'read' });
    assert.equal(after.body.usersCount, 0);
  });
});
