/**
 * `npm run bench`: drives a real Roster process over HTTP from this separate process, on the
 * embedded SQLite and on MariaDB (BENCH_MYSQL_URL, default mysql://root@127.0.0.1:3306; skipped
 * when unreachable), and prints each figure beside its target. Rates are also given as a ratio
 * to a trivial express route measured in the same run, because machines here are noisy.
 *
 * Sections (BENCH_ONLY=scim,access,mapping,worst picks some; default all), each on a fresh database
 * and Roster process: `scim` (SCIM throughput and scaling), `access` (issue 5: the access check
 * and the access-matrix report, bench/access.ts), `mapping` (issue 6: mapping rules,
 * bench/mapping.ts), `worst` (issue 11: one tenant's worst requests while another reads,
 * bench/worst.ts). BENCH_DATABASES=sqlite or =mysql runs one database only.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openDb } from '../src/db/knex.js';
import { benchAccess } from './access.js';
import { call, drive } from './client.js';
import {
  CONCURRENCY,
  mysqlDatabase,
  rssMb,
  sqliteDatabase,
  start,
  freePort,
  withRoster,
  type BenchDatabase,
  type Roster,
  type Row,
} from './common.js';
import { benchMapping } from './mapping.js';
import { seedUsers, tenantIdOf } from './seed.js';
import { benchWorst } from './worst.js';

const POST_USERS = Number(process.env.BENCH_POST_USERS ?? 10_000);
const TOTAL_USERS = Number(process.env.BENCH_TOTAL_USERS ?? 100_000);
const GROUP_MEMBERS = Number(process.env.BENCH_GROUP_MEMBERS ?? 50_000);

const SECTIONS = ['scim', 'access', 'mapping', 'worst'] as const;
type Section = (typeof SECTIONS)[number];
const only = (process.env.BENCH_ONLY ?? '')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
for (const s of only)
  if (!(SECTIONS as readonly string[]).includes(s))
    throw new Error(`BENCH_ONLY: unknown section "${s}" (sections: ${SECTIONS.join(', ')})`);
const sections: Section[] = only.length ? SECTIONS.filter((s) => only.includes(s)) : [...SECTIONS];
const databases = (process.env.BENCH_DATABASES ?? 'sqlite,mysql').split(',').map((s) => s.trim());

/** Direct inserts for directory sizes the SCIM API would take too long to reach. */
async function seedDirectory(url: string, count: number): Promise<void> {
  const db = openDb(url);
  try {
    await seedUsers(db.knex, await tenantIdOf(db.knex), count);
  } finally {
    await db.close();
  }
}

async function benchScim(roster: Roster): Promise<Row[]> {
  const { port, scimToken: token, url } = roster;
  const rows: Row[] = [];
  const ratio = (r: number) => r / roster.trivialRate;
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
  rows.push({
    what: `POST ${POST_USERS} users, c=${CONCURRENCY}`,
    value: `${post.rate.toFixed(0)}/s = ${(ratio(post.rate) * 100).toFixed(0)} %`,
    target: '≥ 30 %',
    ok: ratio(post.rate) >= 0.3,
  });

  const byName = await drive(5000, CONCURRENCY, (i) =>
    call(
      port,
      'GET',
      `/scim/v2/Users?filter=${encodeURIComponent(`userName eq "user${(i * 7919) % POST_USERS}@bench.local"`)}`,
      token,
    ),
  );
  rows.push({
    what: 'GET filter userName eq',
    value: `${byName.rate.toFixed(0)}/s = ${(ratio(byName.rate) * 100).toFixed(0)} %`,
    target: '≥ 40 %',
    ok: ratio(byName.rate) >= 0.4,
  });

  const firstPage = JSON.parse((await call(port, 'GET', '/scim/v2/Users?count=1000&attributes=id', token)).body) as {
    Resources: { id: string }[];
  };
  const ids = firstPage.Resources.map((r) => r.id);
  const byId = await drive(5000, CONCURRENCY, (i) => call(port, 'GET', `/scim/v2/Users/${ids[i % ids.length]}`, token));
  rows.push({
    what: 'GET /Users/{id}',
    value: `${byId.rate.toFixed(0)}/s = ${(ratio(byId.rate) * 100).toFixed(0)} %`,
    target: '≥ 40 %',
    ok: ratio(byId.rate) >= 0.4,
  });

  await seedDirectory(url, TOTAL_USERS - POST_USERS);

  // A group built to GROUP_MEMBERS members, 100 per PATCH.
  const all: string[] = [];
  for (let start = 1; all.length < GROUP_MEMBERS; start += 1000) {
    const page = JSON.parse(
      (await call(port, 'GET', `/scim/v2/Users?startIndex=${start}&count=1000&attributes=id`, token)).body,
    ) as { Resources: { id: string }[] };
    all.push(...page.Resources.map((r) => r.id));
  }
  const group = JSON.parse(
    (
      await call(port, 'POST', '/scim/v2/Groups', token, {
        schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'],
        displayName: 'Big',
      })
    ).body,
  ) as { id: string };
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
  rows.push({
    what: `group to ${GROUP_MEMBERS} members, PATCH ×100`,
    value: `first ${firstB.toFixed(1)} ms, last ${lastB.toFixed(1)} ms, max ${maxB.toFixed(1)} ms`,
    target: '< 50 ms each, last ≤ 1.5× first',
    ok: maxB < 50 && lastB <= 1.5 * firstB,
  });

  // Paging the whole directory, 100 at a time.
  const pages: number[] = [];
  for (let start = 1; start <= TOTAL_USERS; start += 100) {
    const r = await call(port, 'GET', `/scim/v2/Users?startIndex=${start}&count=100`, token);
    if (r.status !== 200) throw new Error(`page ${start} answered ${r.status}`);
    pages.push(r.ms);
  }
  const firstP = avg(pages.slice(0, 10));
  const lastP = avg(pages.slice(-10));
  rows.push({
    what: `page ${TOTAL_USERS} users, count=100`,
    value: `first ${firstP.toFixed(1)} ms, last ${lastP.toFixed(1)} ms (×${(lastP / firstP).toFixed(2)})`,
    target: 'last ≤ 2× first',
    ok: lastP <= 2 * firstP,
  });

  const rss = rssMb(roster.pid);
  rows.push({ what: 'RSS of the Roster process', value: `${rss} MB`, target: '< 300 MB', ok: rss < 300 });
  return rows;
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

const BENCHES: Record<Section, (r: Roster) => Promise<Row[]>> = {
  scim: benchScim,
  access: benchAccess,
  mapping: benchMapping,
  worst: benchWorst,
};

/** Each section on its own fresh database and Roster process, so no section's data or heap weighs on another's. */
async function benchDatabase(
  label: string,
  fresh: () => Promise<BenchDatabase | undefined>,
  trivial: number,
): Promise<Row[]> {
  const rows: Row[] = [];
  for (const section of sections) {
    const database = await fresh();
    if (!database) return [{ what: label, value: 'not reachable: skipped', target: '', ok: undefined }];
    const started = performance.now();
    process.stderr.write(`[${label} ${section}] starting\n`);
    try {
      const got = await withRoster(label, database, trivial, BENCHES[section]);
      rows.push(...got.map((r) => ({ ...r, what: `${label}: ${r.what}` })));
    } finally {
      await database.drop();
    }
    process.stderr.write(`[${label} ${section}] done in ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
  }
  return rows;
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'roster-bench-'));
const rows: Row[] = [];
let trivial = NaN;
if (sections.includes('scim') || sections.includes('access')) {
  trivial = await trivialRate();
  rows.push({ what: 'trivial express route (yardstick)', value: `${trivial.toFixed(0)}/s`, target: '', ok: undefined });
}
try {
  if (databases.includes('sqlite'))
    rows.push(...(await benchDatabase('SQLite', async () => sqliteDatabase(dir, `bench-${Date.now()}`), trivial)));
  if (databases.includes('mysql')) rows.push(...(await benchDatabase('MariaDB', mysqlDatabase, trivial)));
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}

console.log(
  `\n${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}; sections: ${sections.join(', ')}\n`,
);
console.log('| measurement | result | target | met |\n| --- | --- | --- | --- |');
for (const r of rows)
  console.log(`| ${r.what} | ${r.value} | ${r.target} | ${r.ok === undefined ? '' : r.ok ? 'yes' : 'NO'} |`);
