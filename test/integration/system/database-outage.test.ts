import assert from 'node:assert/strict';
import request from 'supertest';
import { createApp } from '../../../src/app.js';
import { openDb } from '../../../src/db/knex.js';
import { createLogger } from '../../../src/log.js';
import { testDeps } from '../../support/app.js';
import { dialectName, testDbUrl } from '../../support/db.js';
import { buildTenant } from '../../support/factories.js';
import { oktaUser, scimClient } from '../../support/scim.js';
import { TcpProxy } from '../../support/tcp-proxy.js';
import { createGroup } from '../../support/workspace.js';

describe('database outage', () => {
  before(function () {
    // An embedded SQLite file cannot go away while the process runs; the outage is a server's.
    if (dialectName !== 'mysql') this.skip();
  });

  it('fails fast with 503 while the database is down and recovers by itself when it returns', async () => {
    const t = await buildTenant();
    const url = new URL(await testDbUrl());
    const proxy = new TcpProxy(url.hostname, Number(url.port || 3306));
    await proxy.start();
    url.host = `127.0.0.1:${proxy.port}`;
    const logger = createLogger('silent');
    const db = openDb(url.toString(), { poolMax: 2, acquireTimeoutMs: 1000, logger });
    const app = createApp({ ...(await testDeps()), db, logger });
    try {
      await request(app).get('/readyz').expect(200);
      await request(app).get('/api/v1/tenant').set(t.admin).expect(200);

      await proxy.stop();
      const started = Date.now();
      const ready = await request(app).get('/readyz').expect(503);
      assert.equal(ready.body.code, 'database_unavailable');
      const api = await request(app).get('/api/v1/tenant').set(t.admin).expect(503);
      assert.equal(api.body.code, 'database_unavailable');
      assert.ok(api.headers['retry-after']);
      const scim = await request(app).get('/scim/v2/ServiceProviderConfig').set(t.scim).expect(503);
      assert.equal(JSON.parse(scim.text).status, '503');
      assert.ok(Date.now() - started < 10_000, `outage answers took ${Date.now() - started} ms`);
      await request(app).get('/healthz').expect(200);

      await proxy.start();
      let ok = false;
      for (let i = 0; i < 20 && !ok; i++) {
        ok = (await request(app).get('/readyz')).status === 200;
        if (!ok) await new Promise((r) => setTimeout(r, 250));
      }
      assert.ok(ok, 'readiness did not recover');
      await request(app).get('/api/v1/tenant').set(t.admin).expect(200);
    } finally {
      await proxy.stop();
      await db.close();
    }
  });

  it('answers 503 with Retry-After, never 500, when connections drop in the middle of transactions', async function () {
    this.timeout(60_000);
    const t = await buildTenant();
    const url = new URL(await testDbUrl());
    const proxy = new TcpProxy(url.hostname, Number(url.port || 3306));
    await proxy.start();
    url.host = `127.0.0.1:${proxy.port}`;
    let logs = '';
    const logger = createLogger('warn', { write: (line: string) => void (logs += line) });
    const db = openDb(url.toString(), { poolMax: 4, acquireTimeoutMs: 2000, logger });
    const app = createApp({ ...(await testDeps()), db, logger });
    try {
      const scim = scimClient(app, t.scimToken);
      const people: string[][] = [];
      for (let r = 0; r < 6; r++) {
        const ids: string[] = [];
        for (let i = 0; i < 5; i++)
          ids.push(
            (await scim.post('/Users', oktaUser(`p${r}-${i}@example.com`, { externalId: `e${r}-${i}` })).expect(201))
              .body.id,
          );
        people.push(ids);
      }
      const group = await createGroup(app, t, 'Crew');
      const addAll = () =>
        Promise.all([
          ...people.map((userIds) =>
            request(app).post(`/api/v1/groups/${group}/members`).set(t.admin).send({ userIds }),
          ),
          ...[0, 1].map((i) => scim.post('/Users', oktaUser(`late${i}@example.com`))),
        ]);
      // The first audit append of any of these requests takes every connection down with it:
      // that request is inside its transaction, the others anywhere between BEGIN and COMMIT.
      const fired = proxy.cutOn('insert into `audit_events`');
      const answers = await addAll();
      await fired;
      const statuses = answers.map((r) => r.status);
      assert.ok(
        statuses.every((s) => s === 200 || s === 201 || s === 503),
        `statuses ${statuses.join(', ')}`,
      );
      assert.ok(statuses.includes(503), `no request saw the outage: ${statuses.join(', ')}`);
      for (const r of answers.filter((a) => a.status === 503))
        assert.ok(r.headers['retry-after'], 'a 503 without Retry-After');
      // The failed statements' bound values (these user ids) never reach the log.
      assert.match(logs, /"msg":"unavailable"/);
      for (const id of people.flat()) assert.ok(!logs.includes(id), `user id ${id} in the log`);

      // Recovered: the same requests succeed, and nothing half-done was committed.
      const again = await addAll();
      assert.deepEqual(
        again.map((r) => r.status),
        [...people.map(() => 200), ...answers.slice(people.length).map((r) => (r.status === 503 ? 201 : 409))],
      );
      const members = await request(app)
        .get(`/api/v1/groups/${group}/members`)
        .set(t.admin)
        .query({ limit: 100 })
        .expect(200);
      assert.equal(members.body.items.length, 30);
    } finally {
      await proxy.stop();
      await db.close();
    }
  });
});
