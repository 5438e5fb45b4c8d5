import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Knex } from 'knex';
import { parse } from 'csv-parse/sync';
import request from 'supertest';
import { recordEvents } from '../../../src/audit/record.js';
import { insertUser } from '../../../src/directory/users.js';
import { issueToken } from '../../../src/tenants/store.js';
import { testApp } from '../../support/app.js';
import { testDb } from '../../support/db.js';
import { buildTenant, type TestTenant } from '../../support/factories.js';
import { useApp } from '../../support/harness.js';

const BASE = Date.UTC(2025, 0, 1);
const KEY = '01940000-0000-7000-8000-00000000000a';
const SCIM = '01940000-0000-7000-8000-00000000000b';
const CSV_HEADER = 'id,at,actorType,actorId,actorDisplay,event,entityType,entityId,entityName,before,after,requestId';

interface Spec {
  event: string;
  entity: [type: string, id: string, name?: string];
  actor?: string;
  before?: unknown;
  after?: unknown;
}

/** Ids sort like the counter, as uuid v7 ids sort like their time. */
const idOf = (n: number) => `01940000-0000-7000-8000-${String(n).padStart(12, '0')}`;
const atOf = (n: number) => BASE + n * 60_000;

/** Inserts events as event n = specs[n - 1], one minute apart: ids and times both ascend. */
async function seed(knex: Knex, tenantId: string, specs: Spec[]): Promise<void> {
  await knex('audit_events').insert(
    specs.map((s, i) => ({
      tenant_id: tenantId,
      id: idOf(i + 1),
      at: atOf(i + 1),
      actor_type: s.actor === SCIM ? 'scim_token' : 'api_key',
      actor_id: s.actor ?? KEY,
      actor_display: s.actor === SCIM ? 'Okta' : 'Admin API key',
      event: s.event,
      entity_type: s.entity[0],
      entity_id: s.entity[1],
      entity_name: s.entity[2] ?? null,
      before_json: s.before === undefined ? null : JSON.stringify(s.before),
      after_json: s.after === undefined ? null : JSON.stringify(s.after),
      request_id: `req-${i + 1}`,
    })),
  );
}

const LOG: Spec[] = [
  { event: 'user.created', entity: ['user', 'u1', 'ada@example.test'], after: { active: true } },
  {
    event: 'user.updated',
    entity: ['user', 'u1', 'ada@example.test'],
    before: { active: true },
    after: { active: false },
  },
  { event: 'group.created', entity: ['group', 'g1', 'Engineering'], actor: SCIM, after: { members: [] } },
  { event: 'users.imported', entity: ['tenant', 't1'], after: { count: 2 } },
  {
    event: 'user.deleted',
    entity: ['user', 'u2', '=HYPERLINK("http://evil.test")'],
    actor: SCIM,
    before: { active: true },
  },
  { event: 'user.updated', entity: ['user', 'u2'], before: { role: 'member' }, after: { role: 'admin' } },
];

type Item = { id: string; event: string; entity: { id: string } };
const ns = (items: Item[]) => items.map((e) => Number(e.id.slice(-12)));

describe('GET /api/v1/audit-events', () => {
  const app = useApp();
  let t: TestTenant;

  before(async () => {
    t = await buildTenant();
    await seed((await testDb()).knex, t.tenant.id, LOG);
  });

  const list = (query: Record<string, string | number>, tenant = t) =>
    request(app).get('/api/v1/audit-events').query(query).set(tenant.admin);

  it('lists newest first, presented', async () => {
    const res = await list({}).expect(200);
    assert.deepEqual(ns(res.body.items), [6, 5, 4, 3, 2, 1]);
    assert.equal(res.body.nextCursor, null);
    assert.deepEqual(res.body.items[4], {
      id: idOf(2),
      at: new Date(atOf(2)).toISOString(),
      actor: { type: 'api_key', id: KEY, display: 'Admin API key' },
      event: 'user.updated',
      entity: { type: 'user', id: 'u1', name: 'ada@example.test' },
      before: { active: true },
      after: { active: false },
      requestId: 'req-2',
    });
    assert.equal(res.body.items[5].before, null);
  });

  it('shows what recordEvents wrote', async () => {
    const fresh = await buildTenant();
    const { knex } = await testDb();
    const ctx = {
      tenantId: fresh.tenant.id,
      actor: { type: 'api_key' as const, id: KEY, display: 'CI key' },
      requestId: 'req-x',
      now: new Date(BASE),
    };
    await recordEvents(knex, ctx, [
      { event: 'user.created', entity: { type: 'user', id: 'u9', name: 'nine' }, after: { userName: 'nine' } },
      {
        event: 'user.deleted',
        entity: { type: 'user', id: 'u9' },
        before: { userName: 'nine' },
        actor: { type: 'rule', id: null, display: 'rule 3' },
      },
    ]);
    const res = await list({}, fresh).expect(200);
    assert.deepEqual(
      res.body.items.map((e: { event: string; actor: unknown; at: string }) => [e.event, e.actor, e.at]),
      [
        ['user.deleted', { type: 'rule', id: null, display: 'rule 3' }, new Date(BASE).toISOString()],
        ['user.created', { type: 'api_key', id: KEY, display: 'CI key' }, new Date(BASE).toISOString()],
      ],
    );
    assert.deepEqual(res.body.items[0].entity, { type: 'user', id: 'u9', name: null });
  });

  it('filters by exact event and by event prefix', async () => {
    assert.deepEqual(ns((await list({ event: 'user.updated' }).expect(200)).body.items), [6, 2]);
    // `user.*` is the user.* family, not everything that starts with "user".
    assert.deepEqual(ns((await list({ event: 'user.*' }).expect(200)).body.items), [6, 5, 2, 1]);
    assert.deepEqual(ns((await list({ event: 'user' }).expect(200)).body.items), []);
    // LIKE wildcards in the prefix are literal.
    assert.deepEqual(ns((await list({ event: 'user_*' }).expect(200)).body.items), []);
  });

  it('filters by entity and by actor', async () => {
    assert.deepEqual(ns((await list({ entityType: 'user', entityId: 'u2' }).expect(200)).body.items), [6, 5]);
    assert.deepEqual(ns((await list({ entityType: 'group' }).expect(200)).body.items), [3]);
    assert.deepEqual(ns((await list({ entityId: 'u1' }).expect(200)).body.items), [2, 1]);
    assert.deepEqual(ns((await list({ actorId: SCIM }).expect(200)).body.items), [5, 3]);
    assert.deepEqual(ns((await list({ actorId: SCIM, event: 'user.*' }).expect(200)).body.items), [5]);
  });

  it('filters by time: from inclusive, to exclusive', async () => {
    const iso = (n: number) => new Date(atOf(n)).toISOString();
    assert.deepEqual(ns((await list({ from: iso(2), to: iso(5) }).expect(200)).body.items), [4, 3, 2]);
    assert.deepEqual(ns((await list({ from: iso(5) }).expect(200)).body.items), [6, 5]);
    assert.deepEqual(ns((await list({ to: iso(2) }).expect(200)).body.items), [1]);
    // Any offset is the same instant.
    assert.deepEqual(ns((await list({ from: '2025-01-01T01:05:00+01:00' }).expect(200)).body.items), [6, 5]);
  });

  it('pages with a cursor, without duplicates or gaps', async () => {
    const seen: number[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res: request.Response = await list({ limit: 4, ...(cursor ? { cursor } : {}) }).expect(200);
      seen.push(...ns(res.body.items));
      cursor = res.body.nextCursor;
      pages++;
    } while (cursor);
    assert.equal(pages, 2);
    assert.deepEqual(seen, [6, 5, 4, 3, 2, 1]);

    const first = await list({ limit: 1, event: 'user.*' }).expect(200);
    const second = await list({ limit: 1, event: 'user.*', cursor: first.body.nextCursor }).expect(200);
    assert.deepEqual(ns(second.body.items), [5]);
  });

  it('answers a bad cursor, a bad date and an unknown parameter with 400 problem JSON', async () => {
    const cursor = await list({ cursor: 'not-a-cursor' })
      .expect(400)
      .expect('Content-Type', /application\/problem\+json/);
    assert.equal(cursor.body.code, 'invalid_cursor');
    assert.deepEqual(cursor.body.fields, [{ path: 'query.cursor', message: 'is invalid' }]);

    const from = await list({ from: 'yesterday' })
      .expect(400)
      .expect('Content-Type', /application\/problem\+json/);
    assert.equal(from.body.code, 'invalid_query');
    assert.deepEqual(
      from.body.fields.map((f: { path: string }) => f.path),
      ['query.from'],
    );
    await list({ to: '2025-01-01' }).expect(400);
    const leap = await list({ to: '2016-12-31T23:59:60Z' }).expect(400);
    assert.deepEqual(
      leap.body.fields.map((f: { path: string }) => f.path),
      ['query.to'],
    );
    await list({ limit: 0 }).expect(400);
    const unknown = await list({ entity: 'user' }).expect(400);
    assert.deepEqual(unknown.body.fields, [{ path: 'query.entity', message: 'is not a known field' }]);
    await request(app).get('/api/v1/audit-events/export').query({ format: 'xml' }).set(t.admin).expect(400);
  });

  it("never shows another tenant's events", async () => {
    const other = await buildTenant();
    await seed((await testDb()).knex, other.tenant.id, [{ event: 'user.created', entity: ['user', 'other-user'] }]);
    assert.deepEqual(
      (await list({}, other).expect(200)).body.items.map((e: Item) => e.entity.id),
      ['other-user'],
    );
    assert.deepEqual(ns((await list({ entityId: 'other-user' }).expect(200)).body.items), []);
    // The same ids exist in both tenants: a cursor is a position in the caller's log only.
    const page = await list({ limit: 1 }).expect(200);
    assert.deepEqual(
      (await list({ cursor: page.body.nextCursor }, other).expect(200)).body.items.map((e: Item) => e.entity.id),
      ['other-user'],
    );
    const csv = await request(app).get('/api/v1/audit-events/export').set(other.admin).expect(200);
    assert.ok(!csv.text.includes('ada@example.test'));
    assert.equal(parse(csv.text).length, 2);
  });

  it('is for admins: a SCIM token and a member’s key get 403', async () => {
    await list({}).set(t.scim).expect(403);
    await request(app).get('/api/v1/audit-events/export').set(t.scim).expect(403);
    const { knex } = await testDb();
    const member = await insertUser(
      knex,
      t.tenant.id,
      { doc: { userName: 'member@example.test' }, source: 'invite', status: 'active' },
      Date.now(),
    );
    const key = await issueToken(knex, t.tenant.id, { kind: 'admin', userId: member.id });
    const auth = { Authorization: `Bearer ${key.token}` };
    const res = await request(app).get('/api/v1/audit-events').set(auth).expect(403);
    assert.equal(res.body.code, 'admin_required');
    await request(app).get('/api/v1/audit-events/export').set(auth).expect(403);
  });

  it('is described in the OpenAPI document', async () => {
    const doc = (await request(app).get('/api/v1/openapi.json').expect(200)).body;
    assert.ok(doc.components.schemas.AuditEvent);
    assert.deepEqual(Object.keys(doc.paths['/audit-events/export'].get.responses['200'].content), [
      'text/csv',
      'application/x-ndjson',
    ]);
  });

  describe('export', () => {
    const exportOf = (query: Record<string, string>) =>
      request(app)
        .get('/api/v1/audit-events/export')
        .query(query)
        .set(t.admin)
        .buffer(true)
        .parse((res, done) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => done(null, text));
        });

    it('streams CSV with a header row, JSON in before/after, formulas defused', async () => {
      const res = await exportOf({ format: 'csv' })
        .expect(200)
        .expect('Content-Type', 'text/csv; charset=utf-8')
        .expect('Content-Disposition', 'attachment; filename="audit-events.csv"');
      const rows = parse(res.body as string) as string[][];
      assert.deepEqual(rows[0], CSV_HEADER.split(','));
      assert.deepEqual(
        rows.slice(1).map((r) => Number(r[0]!.slice(-12))),
        [6, 5, 4, 3, 2, 1],
      );
      assert.deepEqual(rows[5], [
        idOf(2),
        new Date(atOf(2)).toISOString(),
        'api_key',
        KEY,
        'Admin API key',
        'user.updated',
        'user',
        'u1',
        'ada@example.test',
        '{"active":true}',
        '{"active":false}',
        'req-2',
      ]);
      assert.equal(rows[2]![8], `'=HYPERLINK("http://evil.test")`);
      assert.deepEqual(rows[6]!.slice(9), ['', '{"active":true}', 'req-1']);
    });

    it('streams NDJSON, one presented event per line, filtered like the list', async () => {
      const res = await exportOf({ format: 'ndjson', event: 'user.*', from: new Date(atOf(2)).toISOString() })
        .expect(200)
        .expect('Content-Type', 'application/x-ndjson');
      const text = res.body as string;
      assert.ok(text.endsWith('\n'));
      const events = text
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l));
      const listed = (await list({ event: 'user.*', from: new Date(atOf(2)).toISOString() }).expect(200)).body.items;
      assert.deepEqual(events, listed);
      assert.deepEqual(ns(events), [6, 5, 2]);
    });

    it('answers HEAD with the headers alone', async () => {
      const res = await request(app)
        .head('/api/v1/audit-events/export')
        .query({ format: 'ndjson' })
        .set(t.admin)
        .expect(200);
      assert.equal(res.headers['content-type'], 'application/x-ndjson');
      assert.equal(res.headers['content-disposition'], 'attachment; filename="audit-events.ndjson"');
    });

    it('answers an empty log with the header alone, or nothing', async () => {
      assert.equal((await exportOf({ event: 'nothing.here' }).expect(200)).body, `${CSV_HEADER}\n`);
      assert.equal((await exportOf({ format: 'ndjson', event: 'nothing.here' }).expect(200)).body, '');
    });
  });
});

describe('GET /api/v1/audit-events/export at scale', () => {
  const N = 1_000_000;

  /** N events in one set-based statement: ids and times ascend with the counter, as in real use. */
  async function seedMany(knex: Knex, dialect: 'sqlite' | 'mysql', tenantId: string): Promise<void> {
    const columns =
      'tenant_id, id, at, actor_type, actor_id, actor_display, event, entity_type, entity_id, entity_name, before_json, after_json, request_id';
    if (dialect === 'sqlite') {
      await knex.raw(
        `INSERT INTO audit_events (${columns})
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${N})
         SELECT ?, printf('01940000-0000-7000-8000-%012d', i), ? + i * 1000, 'api_key', ?, 'Admin API key', 'user.updated', 'user',
                printf('00000000-0000-4000-8000-%012d', i), 'user' || i || '@example.test',
                '{"active":true,"displayName":"User ' || i || '"}', '{"active":false,"displayName":"User ' || i || '"}', 'req-' || i
         FROM n`,
        [tenantId, BASE, KEY],
      );
    } else {
      await knex.raw(
        `INSERT INTO audit_events (${columns})
         SELECT ?, CONCAT('01940000-0000-7000-8000-', LPAD(seq, 12, '0')), ? + seq * 1000, 'api_key', ?, 'Admin API key', 'user.updated', 'user',
                CONCAT('00000000-0000-4000-8000-', LPAD(seq, 12, '0')), CONCAT('user', seq, '@example.test'),
                CONCAT('{"active":true,"displayName":"User ', seq, '"}'), CONCAT('{"active":false,"displayName":"User ', seq, '"}'), CONCAT('req-', seq)
         FROM seq_1_to_${N}`,
        [tenantId, BASE, KEY],
      );
    }
  }

  let knex: Knex;
  let t: TestTenant;
  let server: http.Server;
  let port: number;

  before(async function () {
    this.timeout(120_000);
    const db = await testDb();
    knex = db.knex;
    t = await buildTenant();
    await seedMany(knex, db.dialect.name, t.tenant.id);
    server = http.createServer(await testApp());
    await once(server.listen(0), 'listening');
    port = (server.address() as AddressInfo).port;
  });

  after(async function () {
    this.timeout(120_000);
    server?.close();
    server?.closeAllConnections();
    // The table is shared by every suite of the run.
    if (t) await knex('audit_events').where('tenant_id', t.tenant.id).delete();
  });

  const exportPath = '/api/v1/audit-events/export?format=ndjson';

  it(`exports ${N.toLocaleString('en')} events as NDJSON in constant memory`, async function () {
    this.timeout(300_000);
    const baseline = process.memoryUsage().heapUsed;
    let peak = baseline;
    const sample = () => void (peak = Math.max(peak, process.memoryUsage().heapUsed));
    const sampler = setInterval(sample, 100);
    let bytes = 0;
    let lines = 0;
    let head = '';
    let tail = '';
    let status = 0;
    try {
      await new Promise<void>((resolve, reject) => {
        http
          .get({ port, path: exportPath, headers: t.admin }, (res) => {
            status = res.statusCode ?? 0;
            res.on('data', (chunk: Buffer) => {
              bytes += chunk.length;
              for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++;
              if (head.length < 1000) head += chunk.toString('latin1', 0, 1000);
              tail = (tail + chunk.toString('latin1', Math.max(0, chunk.length - 1000))).slice(-1000);
            });
            res.on('end', resolve);
            res.on('error', reject);
          })
          .on('error', reject);
      });
    } finally {
      clearInterval(sampler);
      sample();
    }

    assert.equal(status, 200);
    assert.equal(lines, N);
    assert.ok(bytes > 300 * 2 ** 20, `${bytes} bytes`);
    assert.equal(JSON.parse(head.slice(0, head.indexOf('\n'))).id, idOf(N));
    assert.equal(JSON.parse(tail.trimEnd().split('\n').pop()!).id, idOf(1));
    const grew = peak - baseline;
    assert.ok(
      grew < 64 * 2 ** 20,
      `heap grew by ${(grew / 2 ** 20).toFixed(1)} MB while exporting ${(bytes / 2 ** 20).toFixed(0)} MB`,
    );
  });

  it('stops reading the log when the client goes away', async () => {
    let queries = 0;
    const count = (q: { sql: string }) => void (q.sql.includes('audit_events') && queries++);
    knex.on('query', count);
    try {
      await new Promise<void>((resolve, reject) => {
        const req = http
          .get({ port, path: exportPath, headers: t.admin }, (res) => {
            res.once('data', () => {
              req.destroy();
              resolve();
            });
          })
          .on('error', reject);
      });
      await new Promise((r) => setTimeout(r, 300));
      const settled = queries;
      await new Promise((r) => setTimeout(r, 700));
      assert.equal(queries, settled);
      // A full export takes a thousand; the few here filled the socket buffers before the client left.
      assert.ok(queries < 100, `${queries} queries`);
    } finally {
      knex.off('query', count);
    }
  });
});
