import assert from 'node:assert/strict';
import { openDb } from '../../src/db/knex.js';
import { createTenant } from '../../src/provisioning/tenants.js';
import { issueToken } from '../../src/tenants/store.js';
import { freshDatabaseUrl } from '../support/db.js';
import { listeningPort, startRoster, type Running } from '../support/process.js';
import { underLoad, WORST_REQUESTS, type Target } from '../support/worst-requests.js';

/**
 * Issue 11: one process serves every tenant, so no single request of tenant A may stall
 * tenant B. Each of the worst requests runs against a real process while tenant B reads.
 */
describe('one tenant cannot stall another', function () {
  this.timeout(120_000);
  let roster: Running;
  let a: Target;
  let b: Target;

  before(async () => {
    const url = await freshDatabaseUrl('stall');
    roster = startRoster({ DATABASE_URL: url, REQUEST_BODY_TIMEOUT_MS: '2000', SCIM_RATE_LIMIT: '0' });
    const port = await listeningPort(roster);
    const out = roster.stdout();
    a = {
      port,
      scimToken: /SCIM token\s+(roster_scim_\S+)/.exec(out)![1]!,
      adminKey: /Admin API key\s+(roster_admin_\S+)/.exec(out)![1]!,
    };
    const db = openDb(url);
    try {
      const tenant = await createTenant(db.knex, { slug: 'tenant-b' });
      b = {
        port,
        scimToken: (await issueToken(db.knex, tenant.id, { kind: 'scim' })).token,
        adminKey: (await issueToken(db.knex, tenant.id, { kind: 'admin' })).token,
      };
    } finally {
      await db.close();
    }
  });

  after(async () => {
    roster.child.kill('SIGTERM');
    await roster.exited;
  });

  for (const request of WORST_REQUESTS) {
    it(`${request.name}: answered, and tenant B's slowest read stays under 1 s`, async () => {
      const got = await underLoad(a, b, request);
      assert.ok(
        request.expect.includes(got.status),
        `tenant A got ${got.status}, expected one of ${request.expect.join(', ')}`,
      );
      assert.ok(got.readsB > 0, 'tenant B read nothing meanwhile');
      assert.ok(
        got.slowestB < 1000,
        `tenant B waited ${got.slowestB.toFixed(0)} ms while tenant A's request took ${got.ms.toFixed(0)} ms`,
      );
    });
  }
});
