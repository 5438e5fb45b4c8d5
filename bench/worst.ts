/**
 * Issue 11's "worst request" figures: each request of test/support/worst-requests.ts, sent by
 * tenant A while tenant B reads, with its time, tenant B's slowest read, and the event-loop delay
 * it caused in the server (p99 and max of prom-client's event-loop histogram, which resets at
 * every scrape, so the scrape before each request starts a fresh window).
 */
import { openDb } from '../src/db/knex.js';
import { createTenant } from '../src/provisioning/tenants.js';
import { issueToken } from '../src/tenants/store.js';
import { underLoad, WORST_REQUESTS, type Target } from '../test/support/worst-requests.js';
import { call } from './client.js';
import { fmt, startRosterOn, type Roster, type Row } from './common.js';

async function loopDelay(port: number): Promise<{ p99: number; max: number }> {
  const text = (await call(port, 'GET', '/metrics')).body;
  const read = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN) * 1000;
  return { p99: read('nodejs_eventloop_lag_p99_seconds'), max: read('nodejs_eventloop_lag_max_seconds') };
}

export async function benchWorst(roster: Roster): Promise<Row[]> {
  const db = openDb(roster.url);
  let b: Target;
  try {
    const tenant = await createTenant(db.knex, { slug: `bench-b-${Date.now()}` });
    b = {
      port: 0,
      scimToken: (await issueToken(db.knex, tenant.id, { kind: 'scim' })).token,
      adminKey: (await issueToken(db.knex, tenant.id, { kind: 'admin' })).token,
    };
  } finally {
    await db.close();
  }
  // The section's own process, so the trickled upload meets a short body deadline.
  const server = await startRosterOn(roster.url, { REQUEST_BODY_TIMEOUT_MS: '3000' });
  const rows: Row[] = [];
  try {
    const a: Target = { port: server.port, scimToken: roster.scimToken, adminKey: roster.adminKey };
    b.port = server.port;
    for (const request of WORST_REQUESTS) {
      await loopDelay(server.port);
      const got = await underLoad(a, b, request);
      const delay = await loopDelay(server.port);
      const answered = request.expect.includes(got.status);
      rows.push({
        what: `worst: ${request.name}`,
        value: `${got.status} in ${fmt(got.ms, 0)} ms; loop delay p99 ${fmt(delay.p99, 0)} ms, max ${fmt(delay.max, 0)} ms; tenant B slowest ${fmt(got.slowestB, 0)} ms`,
        target: `answered ${request.expect.join('/')}, loop p99 < 50 ms, B < 1 s`,
        ok: answered && delay.p99 < 50 && got.slowestB < 1000,
      });
    }
  } finally {
    await server.stop();
  }
  return rows;
}
