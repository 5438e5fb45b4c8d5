import assert from 'node:assert/strict';
import request from 'supertest';
import { buildTenant, type TestTenant } from '../../support/factories.js';
import { useApp } from '../../support/harness.js';
import { buildUser } from '../../support/management.js';
import { createGroup, idpGroup } from '../../support/workspace.js';

describe('mapping-rule globs over HTTP', () => {
  const app = useApp();
  let t: TestTenant;
  before(async () => {
    t = await buildTenant();
  });

  it('previews and saves a many-star glob at once while a 200-character IdP group exists', async () => {
    const g = await createGroup(app, t, 'Glob Target');
    const u = await buildUser(app, t);
    await idpGroup(app, t, 'a'.repeat(200), [u.id]);
    const matching = await idpGroup(app, t, `${'a'.repeat(199)}b`, [u.id]);
    const body = {
      name: 'many stars',
      enabled: true,
      match: { source: 'any', field: 'displayName', operator: 'glob', value: '*a*a*a*a*a*a*a*a*a*a*a*a*b' },
      actions: { groups: [{ groupId: g, role: 'member' }], agents: [] },
    };
    const started = Date.now();
    const preview = await request(app).post('/api/v1/mapping-rules/preview').set(t.admin).send(body).expect(200);
    assert.deepEqual(
      preview.body.matchedGroups.map((x: { id: string }) => x.id),
      [matching],
    );
    const created = await request(app).post('/api/v1/mapping-rules').set(t.admin).send(body).expect(201);
    assert.equal(created.body.applied.membershipsAdded, 1);
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
  });
});
