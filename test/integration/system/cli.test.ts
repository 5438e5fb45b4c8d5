import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import request from 'supertest';
import type { Express } from 'express';
import { cli } from '../../../src/cli/roster.js';
import { testDb, testDbUrl } from '../../support/db.js';
import { testApp } from '../../support/app.js';
import { ROOT } from '../../support/process.js';

async function run(...argv: string[]) {
  let out = '';
  let err = '';
  const code = await cli(argv, { DATABASE_URL: await testDbUrl() }, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

const slug = () => `cli-${Math.random().toString(36).slice(2, 10)}`;

describe('roster CLI', () => {
  let app: Express;
  before(async () => {
    app = await testApp();
  });

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
    await request(app).get('/scim/v2/ServiceProviderConfig').set('Authorization', `Bearer ${obj.scimToken}`).expect(200);
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

  it('cannot revoke another tenant\'s token', async () => {
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

  it('runs as `npx roster` from the checkout, JSON on stdout and logs apart', async () => {
    const s = slug();
    const { stdout } = await promisify(execFile)(path.join(ROOT, 'bin/roster.js'), ['tenant', 'create', s, '--json'], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: await testDbUrl() },
    });
    assert.equal(JSON.parse(stdout).tenant.slug, s);
  });
});
