import assert from 'node:assert/strict';
import request from 'supertest';
import { buildTenant, type TestTenant } from '../../support/factories.js';
import { useApp } from '../../support/harness.js';
import { buildUser } from '../../support/management.js';
import { createAgent, createGroup, grant, addMembers } from '../../support/workspace.js';

const LEAP = '2016-12-31T23:59:60Z';

describe('instants the management API is asked about', () => {
  const app = useApp();
  let t: TestTenant;
  let agent: string;
  let user: string;
  before(async () => {
    t = await buildTenant();
    agent = await createAgent(app, t, 'Dated');
    user = (await buildUser(app, t)).id;
    const g = await createGroup(app, t, 'Dated group');
    await addMembers(app, t, g, [user]);
    await grant(app, t, agent, { groupId: g, permission: 'view_use', endDate: '2017-01-31', timeZone: 'UTC' });
  });

  const fieldsOf = (body: { fields?: { path: string }[] }) => (body.fields ?? []).map((f) => f.path);

  it('refuses a leap second in every at= with 400 naming the parameter, never evaluating NaN', async () => {
    for (const path of [
      `/api/v1/access/agents/${agent}/users/${user}`,
      `/api/v1/users/${user}/agents`,
      `/api/v1/agents/${agent}/access`,
      '/api/v1/reports/access-matrix',
      '/api/v1/reports/coverage',
    ]) {
      const res = await request(app).get(path).query({ at: LEAP }).set(t.admin);
      assert.equal(res.status, 400, `${path}: ${res.status} ${res.text.slice(0, 200)}`);
      assert.deepEqual(fieldsOf(res.body), ['query.at'], path);
    }
    const batch = await request(app)
      .post('/api/v1/access/checks')
      .set(t.admin)
      .send({ checks: [{ userId: user, agentId: agent, action: 'use' }], at: LEAP })
      .expect(400);
    assert.deepEqual(fieldsOf(batch.body), ['body.at']);
  });

  it('still evaluates ordinary instants on either side of a grant window', async () => {
    const inside = await request(app)
      .get(`/api/v1/access/agents/${agent}/users/${user}`)
      .query({ at: '2016-12-31T23:59:59Z' })
      .set(t.admin)
      .expect(200);
    assert.equal(inside.body.use, true);
    const after = await request(app)
      .get(`/api/v1/access/agents/${agent}/users/${user}`)
      .query({ at: '2017-02-01T00:00:00+00:00' })
      .set(t.admin)
      .expect(200);
    assert.equal(after.body.use, false);
    const batch = await request(app)
      .post('/api/v1/access/checks')
      .set(t.admin)
      .send({ checks: [{ userId: user, agentId: agent, action: 'use' }], at: '2017-02-01T00:00:00Z' })
      .expect(200);
    assert.equal(batch.body.results[0].allowed, false);
  });
});
