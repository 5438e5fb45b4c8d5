import assert from 'node:assert/strict';
import path from 'node:path';
import request from 'supertest';
import { testApp } from '../../support/app.js';
import { buildTenant } from '../../support/factories.js';
import { ROOT } from '../../support/process.js';

describe('GET /api/v1/areas', () => {
  it('returns the default catalogue as a tree with full keys and actions', async () => {
    const app = await testApp();
    const t = await buildTenant();
    const res = await request(app).get('/api/v1/areas').set(t.admin).expect(200);
    const knowledge = res.body.find((a: { key: string }) => a.key === 'knowledge');
    assert.deepEqual(
      knowledge.children.map((c: { key: string }) => c.key),
      ['knowledge.faqs', 'knowledge.sources', 'knowledge.variants'],
    );
    assert.equal(knowledge.label, 'Knowledge');
    assert.deepEqual(knowledge.children[0].actions, ['view', 'create', 'edit', 'delete']);
    await request(app).get('/api/v1/areas').set(t.scim).expect(403);
  });

  it("serves a deployment's own catalogue from AREA_CATALOGUE_FILE (seed 003's six categories)", async () => {
    const app = await testApp({ AREA_CATALOGUE_FILE: path.join(ROOT, 'test/fixtures/catalogues/seed-003.json') });
    const t = await buildTenant();
    const res = await request(app).get('/api/v1/areas').set(t.admin).expect(200);
    assert.deepEqual(
      res.body.map((a: { key: string }) => a.key),
      ['conversations', 'settings', 'users', 'analytics', 'integrations', 'experiments'],
    );
    assert.ok(res.body[4].actions.includes('manage'));
  });
});
