import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import request from 'supertest';
import { cli } from '../../../src/cli/roster.js';
import { enqueueMail } from '../../../src/mail/outbox.js';
import { testDb, testDbUrl } from '../../support/db.js';
import { useApp } from '../../support/harness.js';
import { ROOT } from '../../support/process.js';

async function run(...argv: string[]) {
  let out = '';
  let err = '';
  const code = await cli(argv, { DATABASE_URL: await testDbUrl() }, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

const slug = () => `cli-${Math.random().toString(36).slice(2, 10)}`;

describe('roster CLI', () => {
  const app = useApp();

  it('creates a tenant with --json as exactly one JSON object whose secrets work', async () => {
    const s = slug();
    const r = await run('tenant', 'create', s, '--name', 'Acme Corp', '--user-limit', '25', '--json');
    assert.equal(r.code, 0, r.err);
    const lines = r.out.trim().split('\n');
    assert.equal(lines.length, 1);
    const obj = JSON.parse(lines[0]!);
    assert.equal(obj.tenant.slug, s);
    assert.ok(obj.tenant.id);
    assert.match(obj.scimToken, /^roster_scim_/);
    assert.match(obj.adminApiKey, /^roster_admin_/);
    const t = await request(app).get('/api/v1/tenant').set('Authorization', `Bearer ${obj.adminApiKey}`).expect(200);
    assert.equal(t.body.name, 'Acme Corp');
    assert.equal(t.body.userLimit, 25);
    await request(app)
      .get('/scim/v2/ServiceProviderConfig')
      .set('Authorization', `Bearer ${obj.scimToken}`)
      .expect(200);
  });

  it('refuses an existing slug with exit 1 and changes nothing', async () => {
    const s = slug();
    assert.equal((await run('tenant', 'create', s)).code, 0);
    const db = await testDb();
    const before = await db.knex('api_tokens').count({ n: '*' }).first();
    const r = await run('tenant', 'create', s, '--name', 'Other');
    assert.equal(r.code, 1);
    assert.match(r.err, new RegExp(`"${s}" already exists`));
    const after = await db.knex('api_tokens').count({ n: '*' }).first();
    assert.equal(Number(after!.n), Number(before!.n));
    assert.equal((await db.knex('tenants').where({ slug: s }).first()).name, s);
  });

  it('answers bad arguments with a clear message and exit 2', async () => {
    const cases: string[][] = [
      [],
      ['tenant'],
      ['tenant', 'create'],
      ['tenant', 'create', 'Bad Slug!'],
      ['tenant', 'create', slug(), '--user-limit', 'many'],
      ['tenant', 'create', slug(), '--bogus'],
      ['token', 'create', 'x', '--kind', 'root'],
      ['token', 'create', 'x', '--kind', 'scim', '--expires-in', '3 weeks'],
      ['token', 'revoke', 'x'],
      ['frobnicate'],
    ];
    for (const argv of cases) {
      const r = await run(...argv);
      assert.equal(r.code, 2, `${argv.join(' ')} → ${r.code}: ${r.err}`);
      assert.match(r.err, /^roster: .+/);
      assert.match(r.err, /usage:/);
    }
  });

  it('creates, lists and revokes tokens; a revoked token fails on the next request', async () => {
    const s = slug();
    await run('tenant', 'create', s);
    const c = await run('token', 'create', s, '--kind', 'admin', '--name', 'ci key', '--expires-in', '90d', '--json');
    assert.equal(c.code, 0, c.err);
    const tok = JSON.parse(c.out);
    assert.deepEqual(Object.keys(tok).sort(), ['expiresAt', 'id', 'kind', 'name', 'token']);
    assert.equal(tok.kind, 'admin');
    const days = (Date.parse(tok.expiresAt) - Date.now()) / 86_400_000;
    assert.ok(days > 89.9 && days <= 90, String(days));
    await request(app).get('/api/v1/tenant').set('Authorization', `Bearer ${tok.token}`).expect(200);

    const l = await run('token', 'list', s, '--json');
    const listed = JSON.parse(l.out);
    assert.equal(listed.length, 3);
    const mine = listed.find((x: { id: string }) => x.id === tok.id);
    assert.equal(mine.state, 'active');
    assert.ok(mine.lastUsedAt);
    assert.ok(!l.out.includes(tok.token), 'list shows a secret');

    assert.equal((await run('token', 'revoke', s, tok.id)).code, 0);
    await request(app).get('/api/v1/tenant').set('Authorization', `Bearer ${tok.token}`).expect(401);
    const after = JSON.parse((await run('token', 'list', s, '--json')).out);
    assert.equal(after.find((x: { id: string }) => x.id === tok.id).state, 'revoked');
  });

  it("cannot revoke another tenant's token", async () => {
    const a = slug();
    const b = slug();
    await run('tenant', 'create', a);
    await run('tenant', 'create', b);
    const tok = JSON.parse((await run('token', 'create', a, '--kind', 'scim', '--json')).out);
    const r = await run('token', 'revoke', b, tok.id);
    assert.equal(r.code, 1);
    await request(app).get('/scim/v2/ServiceProviderConfig').set('Authorization', `Bearer ${tok.token}`).expect(200);
  });

  it('lists tenants and reports an unknown slug with exit 1', async () => {
    const s = slug();
    await run('tenant', 'create', s);
    const l = await run('tenant', 'list', '--json');
    assert.ok(JSON.parse(l.out).some((t: { slug: string }) => t.slug === s));
    const r = await run('token', 'list', 'no-such-tenant');
    assert.equal(r.code, 1);
    assert.match(r.err, /no tenant with slug "no-such-tenant"/);
  });

  it("lists the outbox newest first and shows one mail's text, so an unsent invitation can be read", async () => {
    const s = slug();
    const created = JSON.parse((await run('tenant', 'create', s, '--json')).out);
    const db = await testDb();
    const t0 = Date.now() - 60_000;
    const first = await db.tx((trx) =>
      enqueueMail(
        trx,
        created.tenant.id,
        {
          kind: 'invitation',
          to: 'ann@example.com',
          subject: 'Join Acme',
          text: 'Accept: https://roster.test/invite/ann\n',
        },
        t0,
      ),
    );
    const second = await db.tx((trx) =>
      enqueueMail(
        trx,
        created.tenant.id,
        {
          kind: 'invitation',
          to: 'bob@example.com',
          subject: 'Join Acme too',
          text: 'Accept: https://roster.test/invite/bob\n',
        },
        t0 + 1000,
      ),
    );
    await db
      .knex('mail_outbox')
      .where({ id: first })
      .update({ attempts: 2, last_error: 'connect ECONNREFUSED 127.0.0.1:25' });

    const l = await run('outbox', 'list', '--tenant', s, '--json');
    assert.equal(l.code, 0, l.err);
    const listed = JSON.parse(l.out);
    assert.deepEqual(
      listed.map((m: { id: string }) => m.id),
      [second, first],
    );
    assert.deepEqual(listed[1], {
      id: first,
      tenant: s,
      kind: 'invitation',
      to: 'ann@example.com',
      subject: 'Join Acme',
      state: 'pending',
      attempts: 2,
      lastError: 'connect ECONNREFUSED 127.0.0.1:25',
      createdAt: new Date(t0).toISOString(),
      sentAt: null,
      lastAttemptAt: null,
    });
    assert.ok(!('text' in listed[0]), 'the list carries no bodies');

    const one = JSON.parse((await run('outbox', 'list', '--tenant', s, '--limit', '1', '--json')).out);
    assert.deepEqual(
      one.map((m: { id: string }) => m.id),
      [second],
    );

    const text = await run('outbox', 'list', '--tenant', s);
    assert.equal(text.code, 0, text.err);
    const lines = text.out.trim().split('\n');
    assert.equal(lines.length, 2);
    assert.match(
      lines[1]!,
      new RegExp(
        `^${first}\t.*ann@example\\.com\tJoin Acme\tpending \\(2 failed attempts\\)\tlast error: connect ECONNREFUSED`,
      ),
    );

    const shown = await run('outbox', 'show', second);
    assert.equal(shown.code, 0, shown.err);
    assert.match(shown.out, /^To: bob@example\.com\nSubject: Join Acme too\n/);
    assert.match(shown.out, /\n\nAccept: https:\/\/roster\.test\/invite\/bob\n$/);
    const shownJson = JSON.parse((await run('outbox', 'show', second, '--json')).out);
    assert.equal(shownJson.text, 'Accept: https://roster.test/invite/bob\n');
    assert.equal(shownJson.html, null);
    assert.equal(shownJson.tenant, s);

    const unknown = await run('outbox', 'list', '--tenant', slug());
    assert.equal(unknown.code, 1, 'an unknown tenant slug is refused');
    const missing = await run('outbox', 'show', '01900000-0000-7000-8000-000000000000');
    assert.equal(missing.code, 1);
    assert.match(missing.err, /no mail with id/);
    for (const argv of [
      ['outbox', 'list', '--limit', '0'],
      ['outbox', 'list', '--limit', 'all'],
      ['outbox', 'show'],
      ['outbox', 'list', 'extra'],
    ]) {
      const r = await run(...argv);
      assert.equal(r.code, 2, `${argv.join(' ')} → ${r.code}: ${r.err}`);
      assert.match(r.err, /usage:/);
    }
  });

  it('runs as `npx roster` from the checkout, JSON on stdout and logs apart', async () => {
    const s = slug();
    const { stdout } = await promisify(execFile)(path.join(ROOT, 'bin/roster.js'), ['tenant', 'create', s, '--json'], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: await testDbUrl() },
    });
    assert.equal(JSON.parse(stdout).tenant.slug, s);
  });
});
