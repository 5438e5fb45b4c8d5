import type { Knex } from 'knex';
import { DateTime } from 'luxon';
import { decide, loadAgents, loadNames, loadUsers, type CheckedAgent } from './check.js';
import { liveDerivedSql } from '../mapping/live.js';

/**
 * Seed 004's permission reports, produced in batches so they stream: nothing holds the whole
 * matrix, only the tenant's agents and one slice of users at a time.
 */

const USERS_PER_SLICE = 500;

async function* userSlices(knex: Knex, tenantId: string): AsyncGenerator<string[]> {
  let after = '';
  for (;;) {
    const ids = (await knex('users').where({ tenant_id: tenantId }).andWhere('id', '>', after).orderBy('id').limit(USERS_PER_SLICE).select('id')).map((r) => String(r.id));
    if (!ids.length) return;
    after = ids[ids.length - 1]!;
    yield ids;
  }
}

async function allAgents(knex: Knex, tenantId: string): Promise<Map<string, CheckedAgent>> {
  const ids = (await knex('agents').where({ tenant_id: tenantId }).orderBy('id').select('id')).map((r) => String(r.id));
  return loadAgents(knex, tenantId, ids);
}

export interface MatrixRow extends Record<string, unknown> {
  userId: string;
  email: string | null;
  agentId: string;
  agentName: string;
  accessType: string;
  level: 'view_use' | 'edit';
}

/** Users × agents with the level each user holds (pairs without access are left out). */
export async function* accessMatrix(knex: Knex, tenantId: string, at: number): AsyncGenerator<MatrixRow[]> {
  const agents = await allAgents(knex, tenantId);
  // Which agents a user could reach through a subject, so a user is decided against those only.
  const bySubject = new Map<string, Set<string>>();
  const open: string[] = [];
  for (const a of agents.values()) {
    if (a.accessType === 'organization') open.push(a.id);
    for (const g of a.grants) {
      const k = `${g.subjectType}:${g.subjectId}`;
      (bySubject.get(k) ?? bySubject.set(k, new Set()).get(k)!).add(a.id);
    }
  }
  // The agents' rule and IdP group names are the same for every slice: read once.
  const agentNames = await loadNames(knex, tenantId, [], agents.values());
  for await (const ids of userSlices(knex, tenantId)) {
    const users = await loadUsers(knex, tenantId, ids);
    const names = await loadNames(knex, tenantId, users.values(), []);
    const merged = { groups: names.groups, idpGroups: new Map([...agentNames.idpGroups, ...names.idpGroups]), rules: new Map([...agentNames.rules, ...names.rules]) };
    const rows: MatrixRow[] = [];
    for (const id of ids) {
      const u = users.get(id);
      if (!u || u.status !== 'active') continue;
      let candidates: Iterable<string>;
      if (u.role === 'admin') candidates = agents.keys();
      else {
        const set = new Set<string>(open);
        for (const a of bySubject.get(`user:${u.id}`) ?? []) set.add(a);
        for (const gid of names.groups.keys()) for (const a of bySubject.get(`group:${gid}`) ?? []) set.add(a);
        for (const a of agents.values()) if (a.accessType === 'private' && a.createdBy === u.id) set.add(a.id);
        candidates = [...set].sort();
      }
      for (const agentId of candidates) {
        const a = agents.get(agentId)!;
        const d = decide(u, a, at, merged);
        if (d.level !== 'none') rows.push({ userId: u.id, email: u.email, agentId: a.id, agentName: a.name, accessType: a.accessType, level: d.level });
      }
    }
    yield rows;
  }
}

export interface MembershipRow extends Record<string, unknown> {
  groupId: string;
  groupName: string;
  groupStatus: string;
  userId: string;
  email: string | null;
  role: 'member' | 'manager';
  source: 'manual' | 'rule' | 'manual+rule';
}

/** Users per group (`by: 'group'`) or groups per user (`by: 'user'`), one row per pair. */
export async function* groupMembership(knex: Knex, tenantId: string, by: 'group' | 'user'): AsyncGenerator<MembershipRow[]> {
  const [first, second] = by === 'group' ? ['m.group_id', 'm.user_id'] : ['m.user_id', 'm.group_id'];
  let after: (string | number)[] | undefined;
  for (;;) {
    const q = knex('group_members as m')
      .join('local_groups as g', function () {
        this.on('g.tenant_id', '=', 'm.tenant_id').andOn('g.id', '=', 'm.group_id');
      })
      .join('users as u', function () {
        this.on('u.tenant_id', '=', 'm.tenant_id').andOn('u.id', '=', 'm.user_id');
      })
      .where('m.tenant_id', tenantId)
      .whereRaw(liveDerivedSql('m'))
      // A pair held by hand and by a rule is one row: 'manager' sorts before 'member', so MIN picks the higher role.
      .groupBy('m.group_id', 'm.user_id', 'g.name', 'g.status', 'u.email')
      .select('m.group_id', 'm.user_id', 'g.name', 'g.status', 'u.email')
      .min({ role: 'm.role', lo: 'm.rule_id' })
      .max({ hi: 'm.rule_id' })
      .orderBy(first)
      .orderBy(second)
      .limit(1000);
    if (after) q.andWhere((w) => w.where(first, '>', after![0]!).orWhere((w2) => w2.where(first, '=', after![0]!).andWhere(second, '>', after![1]!)));
    const rows = await q;
    if (!rows.length) return;
    const last = rows[rows.length - 1] as Record<string, unknown>;
    after = by === 'group' ? [String(last.group_id), String(last.user_id)] : [String(last.user_id), String(last.group_id)];
    yield rows.map((r: Record<string, unknown>) => ({
      groupId: String(r.group_id),
      groupName: String(r.name),
      groupStatus: String(r.status),
      userId: String(r.user_id),
      email: (r.email as string | null) ?? null,
      role: r.role as MembershipRow['role'],
      source: r.lo === '' && r.hi !== '' ? 'manual+rule' : r.lo === '' ? 'manual' : 'rule',
    }));
    if (rows.length < 1000) return;
  }
}

export interface CoverageRow extends Record<string, unknown> {
  section: 'user_without_access' | 'agent_without_groups' | 'empty_group' | 'grant_expiring';
  id: string;
  name: string | null;
  detail: string;
}

/**
 * Coverage: active users with no agent access, agents restricted to groups with no group
 * assigned, groups without members, and grants ending within `days`.
 */
export async function* coverage(knex: Knex, tenantId: string, at: number, days: number): AsyncGenerator<CoverageRow[]> {
  const users = new Set<string>();
  for await (const rows of accessMatrix(knex, tenantId, at)) for (const r of rows) users.add(r.userId);
  for await (const ids of userSlices(knex, tenantId)) {
    const loaded = await loadUsers(knex, tenantId, ids);
    yield ids
      .map((id) => loaded.get(id)!)
      .filter((u) => u && u.status === 'active' && !users.has(u.id))
      .map((u) => ({ section: 'user_without_access' as const, id: u.id, name: u.email, detail: 'no agent access' }));
  }
  const agents = await allAgents(knex, tenantId);
  yield [...agents.values()]
    .filter((a) => a.accessType === 'groups' && !a.grants.some((g) => g.subjectType === 'group'))
    .map((a) => ({ section: 'agent_without_groups' as const, id: a.id, name: a.name, detail: 'restricted to groups but none assigned' }));
  const empty = await knex('local_groups as g')
    .where('g.tenant_id', tenantId)
    .whereNotExists(knex('group_members as m').whereRaw(`m.tenant_id = g.tenant_id AND m.group_id = g.id AND ${liveDerivedSql('m')}`).select(knex.raw('1')))
    .orderBy('g.id')
    .select('g.id', 'g.name');
  yield empty.map((g: Record<string, unknown>) => ({ section: 'empty_group' as const, id: String(g.id), name: String(g.name), detail: 'no members' }));
  const horizon = at + days * 86_400_000;
  const expiring: CoverageRow[] = [];
  for (const a of agents.values()) {
    for (const g of a.grants) {
      if (!g.endDate) continue;
      const ends = DateTime.fromISO(g.endDate, { zone: g.timeZone }).plus({ days: 1 }).startOf('day').toMillis();
      if (ends > at && ends <= horizon) {
        expiring.push({
          section: 'grant_expiring',
          id: g.id,
          name: a.name,
          detail: `${g.subjectType} ${g.subjectId} ${g.permission} until ${g.endDate} ${g.timeZone}`,
        });
      }
    }
  }
  yield expiring;
}

