import assert from 'node:assert/strict';
import request from 'supertest';
import { createApp } from '../../../src/app.js';
import { openDb } from '../../../src/db/knex.js';
import { createLogger } from '../../../src/log.js';
import { testDeps } from '../../support/app.js';
import { dialectName, testDbUrl } from '../../support/db.js';
import { buildTenant } from '../../support/factories.js';
import { TcpProxy } from '../../support/tcp-proxy.js';

describe('database outage', function () {
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
});
