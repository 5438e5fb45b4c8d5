import assert from 'node:assert/strict';
import request from 'supertest';
import type { Knex } from 'knex';
import { createApp } from '../../../src/app.js';
import { testApp, testDeps } from '../../support/app.js';
import { buildTenant, type TestTenant } from '../../support/factories.js';
import { useApp } from '../../support/harness.js';

describe('HTTP basics', () => {
  const app = useApp({ BODY_LIMIT_BYTES: '20000', JSON_MAX_DEPTH: '32' });
  let t: TestTenant;
  before(async () => {
    t = await buildTenant();
  });

  it('puts a request id on every response, keeping a sane one the caller sent', async () => {
    const a = await request(app).get('/healthz').expect(200);
    assert.match(String(a.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    const b = await request(app).get('/healthz').set('X-Request-Id', 'trace-123').expect(200);
    assert.equal(b.headers['x-request-id'], 'trace-123');
    const c = await request(app).get('/healthz').set('X-Request-Id', 'bad id with spaces').expect(200);
    assert.notEqual(c.headers['x-request-id'], 'bad id with spaces');
  });

  it('answers /healthz and /readyz', async () => {
    assert.deepEqual((await request(app).get('/healthz').expect(200)).body, { status: 'ok' });
    assert.equal((await request(app).get('/readyz').expect(200)).body.status, 'ready');
  });

  it('answers unknown paths with 404 in the shape of the API they are under', async () => {
    const p = await request(app).get('/nope').expect(404);
    assert.equal(p.headers['content-type'], 'application/problem+json; charset=utf-8');
    assert.equal(p.body.code, 'not_found');
    const m = await request(app).get('/api/v1/nope').set(t.admin).expect(404);
    assert.equal(m.body.status, 404);
    const s = await request(app).get('/scim/v2/Nope').set(t.scim).expect(404);
    assert.match(String(s.headers['content-type']), /^application\/scim\+json/);
    assert.equal(JSON.parse(s.text).status, '404');
  });

  it('answers a wrong method with 405 and Allow', async () => {
    const s = await request(app).post('/scim/v2/ServiceProviderConfig').set(t.scim).send({}).expect(405);
    assert.equal(s.headers.allow, 'GET, HEAD');
    assert.equal(JSON.parse(s.text).status, '405');
    const m = await request(app).delete('/api/v1/tenant').set(t.admin).expect(405);
    assert.equal(m.body.code, 'method_not_allowed');
    await request(app).post('/healthz').expect(405);
  });

  it('refuses a body over the size limit with a readable 413', async () => {
    const big = { data: 'x'.repeat(30000) };
    const m = await request(app).patch('/api/v1/tenant').set(t.admin).send(big).expect(413);
    assert.equal(m.body.code, 'body_too_large');
    const s = await request(app)
      .post('/scim/v2/Users')
      .set(t.scim)
      .set('Content-Type', 'application/scim+json')
      .send(JSON.stringify(big))
      .expect(413);
    assert.equal(JSON.parse(s.text).status, '413');
  });

  it('refuses a 5,000-level body with 400 instead of dropping the connection', async () => {
    const deep = '['.repeat(5000) + ']'.repeat(5000);
    const s = await request(app)
      .post('/scim/v2/Users')
      .set(t.scim)
      .set('Content-Type', 'application/scim+json')
      .send(deep)
      .expect(400);
    const body = JSON.parse(s.text);
    assert.equal(body.scimType, 'invalidSyntax');
    assert.match(body.detail, /deeper than 32/);
    const m = await request(app)
      .put('/api/v1/tenant')
      .set(t.admin)
      .set('Content-Type', 'application/json')
      .send(deep)
      .expect(400);
    assert.equal(m.body.code, 'too_deep');
  });

  it('answers malformed JSON with 400 invalidSyntax', async () => {
    const s = await request(app)
      .post('/scim/v2/Users')
      .set(t.scim)
      .set('Content-Type', 'application/scim+json')
      .send('{"userName": ')
      .expect(400);
    assert.equal(JSON.parse(s.text).scimType, 'invalidSyntax');
  });

  it('refuses a SCIM write that is not JSON with 415 in SCIM form', async () => {
    const s = await request(app)
      .post('/scim/v2/Users')
      .set(t.scim)
      .set('Content-Type', 'text/plain')
      .send('userName=bob')
      .expect(415);
    assert.equal(JSON.parse(s.text).status, '415');
  });

  it('hides an unexpected failure behind a 500 with the request id and no stack', async () => {
    const deps = await testDeps();
    const broken = new Proxy(deps.db.knex, {
      apply() {
        throw new TypeError('secret internal detail at /src/whatever.ts:12');
      },
    }) as Knex;
    const brokenApp = createApp({ ...deps, db: { ...deps.db, knex: broken } });
    const m = await request(brokenApp).get('/api/v1/tenant').set(t.admin).expect(500);
    assert.equal(m.body.detail, 'internal error');
    assert.equal(m.body.requestId, m.headers['x-request-id']);
    assert.ok(!JSON.stringify(m.body).includes('secret internal detail'));
    const s = await request(brokenApp).get('/scim/v2/ServiceProviderConfig').set(t.scim).expect(500);
    const body = JSON.parse(s.text);
    assert.equal(body.status, '500');
    assert.ok(body.detail.includes(s.headers['x-request-id']));
    assert.ok(!s.text.includes('secret internal detail') && !s.text.includes('.ts:'));
  });

  it('serves Prometheus metrics with request counts by route family', async () => {
    await request(app).get('/scim/v2/ServiceProviderConfig').set(t.scim).expect(200);
    const res = await request(app).get('/metrics').expect(200);
    assert.match(String(res.headers['content-type']), /^text\/plain/);
    assert.match(res.text, /roster_http_requests_total\{family="scim",method="GET",status="200"\} \d+/);
    assert.match(res.text, /roster_http_request_duration_seconds_bucket/);
    assert.match(res.text, /roster_db_pool_connections\{state="max"\}/);
  });

  it('protects metrics with a token when one is configured, and turns them off', async () => {
    const token = 'metrics-token-0123456789';
    const guarded = await testApp({ METRICS_TOKEN: token });
    await request(guarded).get('/metrics').expect(401);
    await request(guarded).get('/metrics').set('Authorization', 'Bearer wrong-token-0123456789').expect(401);
    await request(guarded).get('/metrics').set('Authorization', `Bearer ${token}`).expect(200);
    const off = await testApp({ METRICS_ENABLED: 'false' });
    await request(off).get('/metrics').expect(404);
  });
});
