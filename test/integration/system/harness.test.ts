import assert from 'node:assert/strict';
import request from 'supertest';
import { useApp, useTenant } from '../../support/harness.js';

describe('test harness: useApp() and useTenant()', () => {
  const app = useApp();
  const t = useTenant();
  // Read while mocha collects the suite, before any hook has run.
  const early = (() => {
    try {
      return t.admin;
    } catch (e) {
      return e;
    }
  })();

  const seen: string[] = [];

  it('hands each test a tenant whose admin key works against the app', async () => {
    seen.push(t.tenant.id);
    const res = await request(app).get('/api/v1/tenant').set(t.admin).expect(200);
    assert.equal(res.body.id, t.tenant.id);
  });

  it('hands the next test a fresh tenant', () => {
    seen.push(t.tenant.id);
    assert.equal(seen.length, 2);
    assert.notEqual(seen[0], seen[1]);
  });

  it('refuses a read before its hook has run, naming the helper', () => {
    assert.ok(early instanceof Error);
    assert.match(early.message, /useTenant\(\) read before its mocha hook ran/);
  });
});
