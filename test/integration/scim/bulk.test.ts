import assert from 'node:assert/strict';
import request from 'supertest';
import { testApp } from '../../support/app.js';
import { buildTenant } from '../../support/factories.js';
import { useApp } from '../../support/harness.js';
import { GROUP, scimClient, USER } from '../../support/scim.js';

const BULK = 'urn:ietf:params:scim:api:messages:2.0:BulkRequest';

describe('SCIM /Bulk', () => {
  const app = useApp({ BODY_LIMIT_BYTES: '200000' });

  it('creates a group referencing users created later in the same request', async () => {
    const scim = scimClient(app, (await buildTenant()).scimToken);
    const res = await scim
      .post('/Bulk', {
        schemas: [BULK],
        Operations: [
          {
            method: 'POST',
            path: '/Groups',
            bulkId: 'g1',
            data: {
              schemas: [GROUP],
              displayName: 'Bulk Group',
              members: [
                { type: 'User', value: 'bulkId:u1' },
                { type: 'User', value: 'bulkId:u2' },
              ],
            },
          },
          { method: 'POST', path: '/Users', bulkId: 'u1', data: { schemas: [USER], userName: 'bulk1@x.io' } },
          { method: 'POST', path: '/Users', bulkId: 'u2', data: { schemas: [USER], userName: 'bulk2@x.io' } },
          {
            method: 'PATCH',
            path: '/Users/bulkId:u1',
            data: { Operations: [{ op: 'replace', path: 'title', value: 'Lead' }] },
          },
        ],
      })
      .expect(200);
    const ops = res.body.Operations;
    assert.deepEqual(
      ops.map((o: { status: string }) => o.status),
      ['201', '201', '201', '200'],
    );
    assert.deepEqual(
      ops.map((o: { bulkId?: string }) => o.bulkId),
      ['g1', 'u1', 'u2', undefined],
    );
    const gid = ops[0].location.split('/').pop();
    assert.match(ops[1].location, /\/scim\/v2\/Users\//);
    assert.match(ops[0].version, /^W\/"\d+"$/);
    const members = (await scim.get(`/Groups/${gid}`).expect(200)).body.members
      .map((m: { display: string }) => m.display)
      .sort();
    assert.deepEqual(members, ['bulk1@x.io', 'bulk2@x.io']);
    assert.equal((await scim.get(`/Users/${ops[1].location.split('/').pop()}`).expect(200)).body.title, 'Lead');
  });

  it('reports each failure in place and stops after failOnErrors', async () => {
    const scim = scimClient(app, (await buildTenant()).scimToken);
    await scim.post('/Users', { schemas: [USER], userName: 'taken@x.io' }).expect(201);
    const res = await scim
      .post('/Bulk', {
        schemas: [BULK],
        failOnErrors: 1,
        Operations: [
          { method: 'POST', path: '/Users', bulkId: 'a', data: { schemas: [USER], userName: 'taken@x.io' } },
          { method: 'POST', path: '/Users', bulkId: 'b', data: { schemas: [USER], userName: 'never@x.io' } },
        ],
      })
      .expect(200);
    assert.equal(res.body.Operations.length, 1);
    assert.equal(res.body.Operations[0].status, '409');
    assert.equal(res.body.Operations[0].response.scimType, 'uniqueness');
    assert.equal((await scim.get('/Users?filter=userName eq "never@x.io"').expect(200)).body.totalResults, 0);
  });

  it('fails an operation whose bulkId is unknown, and circular references with 409', async () => {
    const scim = scimClient(app, (await buildTenant()).scimToken);
    const res = await scim
      .post('/Bulk', {
        schemas: [BULK],
        Operations: [
          {
            method: 'POST',
            path: '/Groups',
            bulkId: 'x',
            data: { schemas: [GROUP], displayName: 'X', members: [{ value: 'bulkId:y' }] },
          },
          {
            method: 'POST',
            path: '/Groups',
            bulkId: 'y',
            data: { schemas: [GROUP], displayName: 'Y', members: [{ value: 'bulkId:x' }] },
          },
          {
            method: 'POST',
            path: '/Groups',
            bulkId: 'z',
            data: { schemas: [GROUP], displayName: 'Z', members: [{ value: 'bulkId:nobody' }] },
          },
        ],
      })
      .expect(200);
    assert.deepEqual(
      res.body.Operations.map((o: { status: string }) => o.status),
      ['409', '409', '400'],
    );
  });

  it('refuses more than maxOperations with 413 naming the limit', async () => {
    const scim = scimClient(app, (await buildTenant()).scimToken);
    const Operations = Array.from({ length: 1001 }, (_, i) => ({ method: 'DELETE', path: `/Users/${i}` }));
    const res = await scim.post('/Bulk', { schemas: [BULK], Operations }).expect(413);
    assert.match(res.body.detail, /maxOperations is 1000/);
    const spc = (await scim.get('/ServiceProviderConfig').expect(200)).body;
    assert.deepEqual(spc.bulk, { supported: true, maxOperations: 1000, maxPayloadSize: 200000 });
  });

  it('resolves a reverse chain of 1,000 bulkId references in linear time', async () => {
    const scim = scimClient(
      await testApp({ BODY_LIMIT_BYTES: '1000000', SCIM_RATE_LIMIT: '0' }),
      (await buildTenant()).scimToken,
    );
    // Each POST refers to the next one's bulkId, so they can only run last to first; the last
    // fails on its path, which releases the one before it to fail as unresolved, and so on.
    const chain = (linked: boolean) =>
      Array.from({ length: 1000 }, (_, i) => ({
        method: 'POST',
        path: '/Widgets',
        bulkId: `u${i}`,
        data: {
          next: linked && i < 999 ? `bulkId:u${i + 1}` : 'none',
          filler: Array.from({ length: 40 }, () => ({ value: 'c' })),
        },
      }));
    const timed = async (Operations: unknown[]) => {
      const started = performance.now();
      const res = await scim.post('/Bulk', { schemas: [BULK], Operations }).expect(200);
      assert.equal(res.body.Operations.length, 1000);
      assert.ok(res.body.Operations.every((o: { status: string }) => o.status === '400'));
      return { ms: performance.now() - started, ops: res.body.Operations };
    };
    const independent = await timed(chain(false));
    const linked = await timed(chain(true));
    assert.match(linked.ops[0].response.detail, /bulkId "u1" does not name a resource created in this request/);
    assert.match(linked.ops[999].response.detail, /bulk path "\/Widgets" must be/);
    // The same operations, chained, cost about the same; a pass per link (quadratic) cost 6×.
    assert.ok(
      linked.ms < 3 * independent.ms + 200,
      `chained ${Math.round(linked.ms)} ms, independent ${Math.round(independent.ms)} ms`,
    );
  });

  it('refuses two operations declaring one bulkId', async () => {
    const scim = scimClient(app, (await buildTenant()).scimToken);
    const op = { method: 'POST', path: '/Users', bulkId: 'same', data: { schemas: [USER], userName: 'dup@x.io' } };
    const res = await scim
      .post('/Bulk', { schemas: [BULK], Operations: [op, { ...op, data: { schemas: [USER], userName: 'dup2@x.io' } }] })
      .expect(400);
    assert.match(res.body.detail, /operations 1 and 2 both declare bulkId "same"/);
    assert.equal((await scim.get('/Users').expect(200)).body.totalResults, 0);
  });

  it("charges each operation against the token's rate limit; 429 with Retry-After applies nothing", async () => {
    const limited = await testApp({ SCIM_RATE_LIMIT: '10', BODY_LIMIT_BYTES: '200000' });
    const scim = scimClient(limited, (await buildTenant()).scimToken);
    const posts = (n: number, prefix: string) =>
      Array.from({ length: n }, (_, i) => ({
        method: 'POST',
        path: '/Users',
        bulkId: `${prefix}${i}`,
        data: { schemas: [USER], userName: `${prefix}${i}@x.io` },
      }));
    for (let i = 0; i < 10; i++) await scim.get('/ServiceProviderConfig').expect(200);
    const refused = await scim.post('/Bulk', { schemas: [BULK], Operations: posts(15, 'r') }).expect(429);
    assert.ok(Number(refused.headers['retry-after']) >= 1);
    assert.match(refused.body.detail, /counts as 15 requests/);
    await scim.post('/Bulk', { schemas: [BULK], Operations: posts(5, 'ok') }).expect(200);
    const users = (await scim.get('/Users?count=100').expect(200)).body.Resources.map(
      (u: { userName: string }) => u.userName,
    );
    assert.deepEqual(users.sort(), ['ok0@x.io', 'ok1@x.io', 'ok2@x.io', 'ok3@x.io', 'ok4@x.io']);

    // Beyond the burst (20), a Bulk needs a full bucket and leaves it in debt.
    const fresh = scimClient(limited, (await buildTenant()).scimToken);
    await fresh.post('/Bulk', { schemas: [BULK], Operations: posts(30, 'big') }).expect(200);
    assert.equal((await fresh.get('/ServiceProviderConfig')).status, 429);
  });

  it('lets other requests through while a 1,000-operation Bulk runs', async function () {
    this.timeout(120_000);
    const t = await buildTenant();
    const big = await testApp({ SCIM_RATE_LIMIT: '0', BODY_LIMIT_BYTES: '400000' });
    const Operations = Array.from({ length: 1000 }, (_, i) => ({
      method: 'POST',
      path: '/Users',
      bulkId: `b${i}`,
      data: { schemas: [USER], userName: `loop${i}@x.io` },
    }));
    let done = false;
    const bulk = scimClient(big, t.scimToken)
      .post('/Bulk', { schemas: [BULK], Operations })
      .then((res) => {
        done = true;
        return res;
      });
    const slowest: number[] = [];
    await new Promise((resolve) => setTimeout(resolve, 200));
    while (!done && slowest.length < 20) {
      const started = performance.now();
      await request(big).get('/healthz').expect(200);
      if (!done) slowest.push(performance.now() - started);
    }
    const res = await bulk;
    assert.equal(res.status, 200);
    assert.ok(res.body.Operations.every((o: { status: string }) => o.status === '201'));
    assert.ok(slowest.length >= 3, `the Bulk ended before /healthz could be measured (${slowest.length} samples)`);
    assert.ok(
      Math.max(...slowest) < 200,
      `/healthz took ${slowest.map((ms) => Math.round(ms)).join(', ')} ms during the Bulk`,
    );
  });
});
