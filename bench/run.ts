/**
 * `npm run bench`: drives a real Roster process over HTTP from this separate process, on the
 * embedded SQLite and on MariaDB (BENCH_MYSQL_URL, default mysql://root@127.0.0.1:3306; skipped
 * when unreachable), and prints each figure beside its target. Rates are also given as a ratio
 * to a trivial express route measured in the same run, because machines here are noisy.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import knexFactory from 'knex';
import { openDb } from '../src/db/knex.js';
import { newId } from '../src/db/ids.js';
import { caseMappedKey } from '../src/scim/schema/value-key.js';
import { call, drive } from './client.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CONCURRENCY = 16;
const POST_USERS = Number(process.env.BENCH_POST_USERS ?? 10_000);
const TOTAL_USERS = Number(process.env.BENCH_TOTAL_USERS ?? 100_000);
const GROUP_MEMBERS = Number(process.env.BENCH_GROUP_MEMBERS ?? 50_000);

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function start(script: string, env: Record<string, string>, ready: RegExp): Promise<{ child: ChildProcess; out: () => string }> {
  let out = '';
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, script)], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  for (let i = 0; i < 400 && !ready.test(out); i++) await new Promise((r) => setTimeout(r, 50));
  if (!ready.test(out)) throw new Error(`${script} did not start: ${out}`);
  return { child, out: () => out };
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

async function seedUsers(url: string, tenantSlug: string, count: number): Promise<void> {
  const db = openDb(url);
  try {
    const tenant = await db.knex('tenants').where({ slug: tenantSlug }).first();
    const now = Date.now();
    for (let done = 0; done < count; ) {
      const n = Math.min(500, count - done);
      const rows = Array.from({ length: n }, (_, i) => {
        const userName = `seed${done + i}@bench.local`;
        return {
          tenant_id: tenant.id,
          id: newId(),
          user_name: userName,
          user_name_key: caseMappedKey(userName),
          external_id: null,
          display_name: null,
          email: userName,
          email_key: userName,
          active: true,
          status: 'active',
          role: 'member',
          template_id: null,
          crm_access: false,
          source: 'scim',
          scim_doc: JSON.stringify({ userName, active: true }),
          version: 1,
          created_at: now,
          updated_at: now,
          last_login_at: null,
        };
      });
      await db.knex('users').insert(rows);
      done += n;
    }
  } finally {
    await db.close();
  }
}

interface Row {
  what: string;
  value: string;
  target: string;
  ok: boolean | undefined;
}

async function benchOne(label: string, url: string, trivialRate: number): Promise<Row[]> {
  const port = await freePort();
  const roster = await start('src/main.ts', { DATABASE_URL: url, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', SCIM_RATE_LIMIT: '0', DB_POOL_MAX: '16' }, /SCIM token/);
  const token = /SCIM token\s+(roster_scim_\S+)/.exec(roster.out())![1]!;
  const rows: Row[] = [];
  const ratio = (r: number) => r / trivialRate;
  try {
    const post = await drive(POST_USERS, CONCURRENCY, (i) =>
      call(port, 'POST', '/scim/v2/Users', token, {
        schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
        userName: `user${i}@bench.local`,
        name: { givenName: 'Bench', familyName: `User${i}` },
        emails: [{ value: `user${i}@bench.local`, type: 'work', primary: true }],
        externalId: `ext-${i}`,
        active: true,
      }),
    );
    rows.push({ what: `POST ${POST_USERS} users, c=${CONCURRENCY}`, value: `${post.rate.toFixed(0)}/s = ${(ratio(post.rate) * 100).toFixed(0)} %`, target: '≥ 30 %', ok: ratio(post.rate) >= 0.3 });

    const byName = await drive(5000, CONCURRENCY, (i) => call(port, 'GET', `/scim/v2/Users?filter=${encodeURIComponent(`userName eq "user${(i * 7919) % POST_USERS}@bench.local"`)}`, token));
    rows.push({ what: 'GET filter userName eq', value: `${byName.rate.toFixed(0)}/s = ${(ratio(byName.rate) * 100).toFixed(0)} %`, target: '≥ 40 %', ok: ratio(byName.rate) >= 0.4 });

    const firstPage = JSON.parse((await call(port, 'GET', '/scim/v2/Users?count=1000&attributes=id', token)).body) as { Resources: { id: string }[] };
    const ids = firstPage.Resources.map((r) => r.id);
    const byId = await drive(5000, CONCURRENCY, (i) => call(port, 'GET', `/scim/v2/Users/${ids[i % ids.length]}`, token));
    rows.push({ what: 'GET /Users/{id}', value: `${byId.rate.toFixed(0)}/s = ${(ratio(byId.rate) * 100).toFixed(0)} %`, target: '≥ 40 %', ok: ratio(byId.rate) >= 0.4 });

    await seedUsers(url, 'default', TOTAL_USERS - POST_USERS);

    // A group built to GROUP_MEMBERS members, 100 per PATCH.
    const all: string[] = [];
    for (let start = 1; all.length < GROUP_MEMBERS; start += 1000) {
      const page = JSON.parse((await call(port, 'GET', `/scim/v2/Users?startIndex=${start}&count=1000&attributes=id`, token)).body) as { Resources: { id: string }[] };
      all.push(...page.Resources.map((r) => r.id));
    }
    const group = JSON.parse((await call(port, 'POST', '/scim/v2/Groups', token, { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: 'Big' })).body) as { id: string };
    const batches: number[] = [];
    for (let i = 0; i < GROUP_MEMBERS; i += 100) {
      const r = await call(port, 'PATCH', `/scim/v2/Groups/${group.id}`, token, {
        schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
        Operations: [{ op: 'add', path: 'members', value: all.slice(i, i + 100).map((value) => ({ value })) }],
      });
      if (r.status !== 204) throw new Error(`PATCH answered ${r.status}: ${r.body}`);
      batches.push(r.ms);
    }
    const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const firstB = avg(batches.slice(0, 10));
    const lastB = avg(batches.slice(-10));
    const maxB = Math.max(...batches);
    rows.push({ what: `group to ${GROUP_MEMBERS} members, PATCH ×100`, value: `first ${firstB.toFixed(1)} ms, last ${lastB.toFixed(1)} ms, max ${maxB.toFixed(1)} ms`, target: '< 50 ms each, last ≤ 1.5× first', ok: maxB < 50 && lastB <= 1.5 * firstB });

    // Paging the whole directory, 100 at a time.
    const pages: number[] = [];
    for (let start = 1; start <= TOTAL_USERS; start += 100) {
      const r = await call(port, 'GET', `/scim/v2/Users?startIndex=${start}&count=100`, token);
      if (r.status !== 200) throw new Error(`page ${start} answered ${r.status}`);
      pages.push(r.ms);
    }
    const firstP = avg(pages.slice(0, 10));
    const lastP = avg(pages.slice(-10));
    rows.push({ what: `page ${TOTAL_USERS} users, count=100`, value: `first ${firstP.toFixed(1)} ms, last ${lastP.toFixed(1)} ms (×${(lastP / firstP).toFixed(2)})`, target: 'last ≤ 2× first', ok: lastP <= 2 * firstP });

    const rss = rssMb(roster.child.pid!);
    rows.push({ what: 'RSS of the Roster process', value: `${rss} MB`, target: '< 300 MB', ok: rss < 300 });
  } finally {
    roster.child.kill('SIGTERM');
    await new Promise((r) => roster.child.once('exit', r));
  }
  return rows.map((r) => ({ ...r, what: `${label}: ${r.what}` }));
}

async function trivialRate(): Promise<number> {
  const port = await freePort();
  const t = await start('bench/trivial-server.ts', { PORT: String(port) }, /ready/);
  try {
    await drive(2000, CONCURRENCY, () => call(port, 'GET', '/scim/v2/Users'));
    return (await drive(20000, CONCURRENCY, () => call(port, 'GET', '/scim/v2/Users'))).rate;
  } finally {
    t.child.kill('SIGTERM');
  }
}

async function mysqlDatabase(): Promise<{ url: string; drop: () => Promise<void> } | undefined> {
  const server = process.env.BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
  const u = new URL(server);
  const name = `roster_bench_${Date.now().toString(36)}`;
  const admin = knexFactory({ client: 'mysql2', connection: { host: u.hostname, port: Number(u.port || 3306), user: decodeURIComponent(u.username), password: decodeURIComponent(u.password) } });
  try {
    await admin.raw(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  } catch {
    await admin.destroy();
    return undefined;
  }
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    drop: async () => {
      await admin.raw(`DROP DATABASE IF EXISTS \`${name}\``);
      await admin.destroy();
    },
  };
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'roster-bench-'));
const trivial = await trivialRate();
const rows: Row[] = [{ what: 'trivial express route (yardstick)', value: `${trivial.toFixed(0)}/s`, target: '', ok: undefined }];
rows.push(...(await benchOne('SQLite', `sqlite:${path.join(dir, 'bench.sqlite')}`, trivial)));
const mysql = await mysqlDatabase();
if (mysql) {
  try {
    rows.push(...(await benchOne('MariaDB', mysql.url, trivial)));
  } finally {
    await mysql.drop();
  }
} else rows.push({ what: 'MariaDB', value: 'not reachable: skipped', target: '', ok: undefined });
fs.rmSync(dir, { recursive: true, force: true });

console.log(`\n${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}\n`);
console.log('| measurement | result | target | met |\n| --- | --- | --- | --- |');
for (const r of rows) console.log(`| ${r.what} | ${r.value} | ${r.target} | ${r.ok === undefined ? '' : r.ok ? 'yes' : 'NO'} |`);
