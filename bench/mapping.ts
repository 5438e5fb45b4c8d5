/**
 * Issue 6's figures. (a) One SCIM PATCH adding BENCH_MAPPING_ADD users to an IdP group that 3
 * rules match (equals, prefix, glob): its latency and the derived rows it writes. (b) A rule over
 * an IdP group of BENCH_MAPPING_IDP_MEMBERS members (seeded by direct SQL), created and then
 * changed: the seconds each takes, and meanwhile a loop of SCIM GET /Users/{id} whose slowest
 * answer is set against the longest chunk transaction of the sweep.
 */
import type { Knex } from 'knex';
import { openDb } from '../src/db/knex.js';
import { newId } from '../src/db/ids.js';
import { SWEEP_CHUNK } from '../src/provisioning/mapping.js';
import { call, type Reply } from './client.js';
import { envNumber, fmt, percentile, v7Millis, type Roster, type Row } from './common.js';
import { insertChunked, seedUsers, tenantIdOf } from './seed.js';

const ADD = envNumber('BENCH_MAPPING_ADD', 100);
const ROUNDS = envNumber('BENCH_MAPPING_ROUNDS', 5);
const MEMBERS = envNumber('BENCH_MAPPING_IDP_MEMBERS', 50_000);
const PROBES = envNumber('BENCH_MAPPING_PROBE_CONCURRENCY', 1);

async function ok(p: Promise<Reply>, status: number, what: string): Promise<{ id: string } & Record<string, unknown>> {
  const r = await p;
  if (r.status !== status) throw new Error(`${what} answered ${r.status}: ${r.body.slice(0, 400)}`);
  return JSON.parse(r.body || '{}') as { id: string } & Record<string, unknown>;
}

async function derivedCount(
  knex: Knex,
  tenantId: string,
  ruleIds: string[],
): Promise<{ memberships: number; grants: number }> {
  const m = await knex('group_members')
    .where({ tenant_id: tenantId })
    .whereIn('rule_id', ruleIds)
    .count({ n: '*' })
    .first();
  const g = await knex('agent_grants')
    .where({ tenant_id: tenantId })
    .whereIn('rule_id', ruleIds)
    .count({ n: '*' })
    .first();
  return { memberships: Number(m?.n ?? 0), grants: Number(g?.n ?? 0) };
}

async function comInsert(knex: Knex): Promise<number> {
  const res = (await knex.raw(`SHOW GLOBAL STATUS LIKE 'Com_insert'`)) as [{ Value: string }[]];
  return Number(res[0][0]?.Value ?? NaN);
}

/** SCIM GET /Users/{id} in a loop until stopped: every latency, and failures. */
function probe(r: Roster, userIds: string[]) {
  let running = true;
  const times: number[] = [];
  const failures: string[] = [];
  let i = 0;
  const loop = async () => {
    while (running) {
      const id = userIds[(i++ * 7919) % userIds.length]!;
      const t0 = performance.now();
      try {
        const res = await call(r.port, 'GET', `/scim/v2/Users/${id}`, r.scimToken);
        times.push(res.ms);
        if (res.status !== 200) failures.push(`${res.status} after ${fmt(res.ms, 0)} ms`);
      } catch (err) {
        // A request that waited and then failed counts with the time it waited.
        times.push(performance.now() - t0);
        failures.push(`${(err as Error).message} after ${fmt(performance.now() - t0, 0)} ms`);
      }
    }
  };
  const loops = Array.from({ length: PROBES }, loop);
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      const sorted = [...times].sort((a, b) => a - b);
      return {
        n: times.length,
        p50: percentile(sorted, 0.5),
        p99: percentile(sorted, 0.99),
        max: sorted[sorted.length - 1] ?? NaN,
        failures,
      };
    },
  };
}

/**
 * When each chunk of a sweep wrote, from the UUIDv7 ids of the grants it inserted (a chunk
 * builds its rows in one go, within a few milliseconds): the gaps between those
 * instants are the chunks' durations, the first one including the sweep's preparation.
 */
async function chunkTimes(knex: Knex, tenantId: string, ruleId: string, startedWall: number) {
  const stamps = (await knex('agent_grants').where({ tenant_id: tenantId, rule_id: ruleId }).select('id'))
    .map((g: Record<string, unknown>) => v7Millis(String(g.id)))
    .filter((t) => t >= startedWall - 5)
    .sort((a, b) => a - b);
  const clusters: number[] = [];
  // Stamps of one chunk are a few ms apart; chunks are hundreds of ms apart.
  stamps.forEach((t, k) => {
    if (!k || t - stamps[k - 1]! > 50) clusters.push(t);
  });
  const gaps = clusters.map((t, k) => t - (k ? clusters[k - 1]! : startedWall));
  return {
    gaps,
    chunks: clusters.length,
    first: gaps[0] ?? NaN,
    longest: gaps.length > 1 ? Math.max(...gaps.slice(1)) : NaN,
    mean: gaps.length > 1 ? gaps.slice(1).reduce((a, b) => a + b, 0) / (gaps.length - 1) : NaN,
  };
}

export async function benchMapping(r: Roster): Promise<Row[]> {
  const rows: Row[] = [];
  const db = openDb(r.url);
  const knex = db.knex;
  try {
    const tenantId = await tenantIdOf(knex);
    const started = performance.now();
    const userIds = await seedUsers(knex, tenantId, MEMBERS + ADD * ROUNDS, 'map');
    const big = userIds.slice(0, MEMBERS);
    const bigGroupId = newId();
    const now = Date.now();
    await knex('idp_groups').insert({
      tenant_id: tenantId,
      id: bigGroupId,
      source: 'scim',
      display_name: 'All Staff',
      display_name_key: 'all staff',
      external_id: 'all-staff',
      scim_doc: JSON.stringify({ displayName: 'All Staff', externalId: 'all-staff' }),
      version: 1,
      created_at: now,
      updated_at: now,
    });
    await insertChunked(
      knex,
      'idp_group_members',
      big.map((id) => ({
        tenant_id: tenantId,
        group_id: bigGroupId,
        member_id: id,
        member_type: 'User',
        created_at: now,
      })),
    );
    process.stderr.write(
      `[${r.label} mapping] seeded ${userIds.length} users and an IdP group of ${big.length} in ${fmt((performance.now() - started) / 1000)} s\n`,
    );

    const admin = (method: string, path: string, body?: unknown) =>
      call(r.port, method, `/api/v1${path}`, r.adminKey, body);
    const groups: string[] = [];
    for (const name of ['Platform Engineers', 'Platform On-call', 'Builders', 'Everyone'])
      groups.push((await ok(admin('POST', '/groups', { name }), 201, 'POST /groups')).id);
    const agents: string[] = [];
    for (const name of ['Deploy Assistant', 'Incident Bot', 'Code Review', 'Handbook', 'Handbook Editor']) {
      agents.push((await ok(admin('POST', '/agents', { name, accessType: 'groups' }), 201, 'POST /agents')).id);
    }

    // (a) An IdP group three rules match; PATCHes adding ADD users each.
    const idp = await ok(
      call(r.port, 'POST', '/scim/v2/Groups', r.scimToken, {
        schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'],
        displayName: 'Engineering Platform',
      }),
      201,
      'POST /Groups',
    );
    const ruleIds: string[] = [];
    const matches = [
      { operator: 'equals', value: 'engineering platform' },
      { operator: 'prefix', value: 'Engineering' },
      { operator: 'glob', value: '*platform' },
    ];
    for (const [i, m] of matches.entries()) {
      const out = await ok(
        admin('POST', '/mapping-rules', {
          name: `Platform ${m.operator}`,
          enabled: true,
          match: { source: 'any', field: 'displayName', ...m },
          actions: {
            groups: [{ groupId: groups[i]!, role: 'member' }],
            agents: [{ agentId: agents[i]!, permission: 'view_use' }],
          },
        }),
        201,
        'POST /mapping-rules',
      );
      ruleIds.push(out.id);
    }
    const patchMs: number[] = [];
    const written: number[] = [];
    const inserts: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const members = userIds.slice(MEMBERS + round * ADD, MEMBERS + (round + 1) * ADD);
      const before = await derivedCount(knex, tenantId, ruleIds);
      const insertsBefore = r.dialect === 'mysql' ? await comInsert(knex) : NaN;
      const res = await call(r.port, 'PATCH', `/scim/v2/Groups/${idp.id}`, r.scimToken, {
        schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
        Operations: [{ op: 'add', path: 'members', value: members.map((value) => ({ value })) }],
      });
      if (res.status !== 204 && res.status !== 200)
        throw new Error(`PATCH /Groups answered ${res.status}: ${res.body.slice(0, 300)}`);
      if (r.dialect === 'mysql') inserts.push((await comInsert(knex)) - insertsBefore);
      const after = await derivedCount(knex, tenantId, ruleIds);
      patchMs.push(res.ms);
      written.push(after.memberships - before.memberships + after.grants - before.grants);
    }
    const expected = ADD * matches.length * 2;
    const sortedPatch = [...patchMs].sort((a, b) => a - b);
    const rowsOk = written.every((w) => w === expected);
    rows.push({
      what: `mapping: SCIM PATCH +${ADD} users, IdP group matched by 3 rules (×${ROUNDS})`,
      value:
        `median ${fmt(percentile(sortedPatch, 0.5))} ms, max ${fmt(sortedPatch[sortedPatch.length - 1]!)} ms; ` +
        `${written.join('/')} derived rows each` +
        (inserts.length ? `, ${Math.max(...inserts)} INSERT statements at most (all tables)` : ''),
      target: `${expected} derived rows in one batch`,
      // Row counts are read back on both databases; statements are counted on MariaDB only.
      ok: inserts.length ? rowsOk && Math.max(...inserts) <= 10 : rowsOk ? undefined : false,
    });

    // (b) A rule over the big IdP group: created, then its action changed.
    const sweep = async (what: string, send: () => Promise<Reply>) => {
      const watch = probe(r, userIds);
      await new Promise((res) => setTimeout(res, 200));
      const wall = Date.now();
      const res = await send();
      let body = JSON.parse(res.body) as {
        id?: string;
        rule: { id: string };
        applied: Record<string, number>;
        job?: { id: string };
      };
      // A sweep that does not finish within the request is a job (202 {…rule, job}): wait for it.
      if (res.status === 202) {
        for (;;) {
          const job = JSON.parse((await admin('GET', `/jobs/${body.job!.id}`)).body) as {
            state: string;
            result: { applied: Record<string, number> } | null;
          };
          if (job.state === 'succeeded') {
            body = { rule: { id: body.id! }, applied: job.result!.applied };
            res.ms = Date.now() - wall;
            break;
          }
          if (job.state !== 'queued' && job.state !== 'running')
            throw new Error(`${what}: the sweep job ended ${job.state}`);
          await new Promise((res) => setTimeout(res, 100));
        }
      }
      await new Promise((res) => setTimeout(res, 200));
      const probes = await watch.stop();
      if (res.status >= 300 && res.status !== 202)
        throw new Error(`${what} answered ${res.status}: ${res.body.slice(0, 400)}`);
      const chunks = await chunkTimes(knex, tenantId, body.rule.id, wall);
      process.stderr.write(
        `[${r.label} mapping] ${what}: ${fmt(res.ms / 1000, 2)} s, applied ${JSON.stringify(body.applied)}, chunks ${JSON.stringify(chunks)}, probes ${JSON.stringify({ ...probes, failures: probes.failures.slice(0, 5) })}\n`,
      );
      const a = body.applied;
      rows.push({
        what: `mapping: ${what}, IdP group of ${big.length}`,
        value: `${fmt(res.ms / 1000, 1)} s (+${a.membershipsAdded! - a.membershipsRemoved!} memberships, ${a.grantsAdded} grants added, ${a.grantsRemoved} removed)`,
        target: r.dialect === 'mysql' ? '≤ 30 s' : '(MariaDB target: ≤ 30 s)',
        ok: r.dialect === 'mysql' ? res.ms <= 30_000 : undefined,
      });
      rows.push({
        what: `mapping: concurrent SCIM GET /Users/{id} during the ${what.split(' (')[0]}`,
        value:
          `${probes.n} GETs, p50 ${fmt(probes.p50)} ms, max ${fmt(probes.max, 0)} ms${probes.failures.length ? ` (${probes.failures.length} failed: ${probes.failures[0]})` : ''}; ` +
          `${chunks.chunks} chunks of ≤ ${SWEEP_CHUNK} users: longest ${fmt(chunks.longest, 0)} ms, mean ${fmt(chunks.mean, 0)} ms, preparation + first ${fmt(chunks.first, 0)} ms`,
        target: 'max ≤ one chunk',
        ok: !probes.failures.length && probes.max <= chunks.longest + 25,
      });
      return body.rule.id;
    };
    const ruleId = await sweep('rule create', () =>
      admin('POST', '/mapping-rules', {
        name: 'All staff',
        enabled: true,
        match: { source: 'scim', field: 'displayName', operator: 'equals', value: 'All Staff' },
        actions: {
          groups: [{ groupId: groups[3]!, role: 'member' }],
          agents: [{ agentId: agents[3]!, permission: 'view_use' }],
        },
      }),
    );
    await sweep('rule change (agent and permission)', () =>
      admin('PATCH', `/mapping-rules/${ruleId}`, {
        actions: {
          groups: [{ groupId: groups[3]!, role: 'member' }],
          agents: [{ agentId: agents[4]!, permission: 'edit' }],
        },
      }),
    );
  } finally {
    await db.close();
  }
  return rows;
}
