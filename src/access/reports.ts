import type { Knex } from 'knex';
import { DateTime } from 'luxon';
import { inChunks } from '../db/batch.js';
import {
  decide,
  loadAgents,
  loadNames,
  loadUsers,
  type AgentAccess,
  type CheckedAgent,
  type CheckedUser,
  type Names,
} from './check.js';
import { liveDerivedSql } from '../mapping/live.js';

/**
 * Seed 004's permission reports, produced in batches so they stream: nothing holds the whole
 * matrix, the tenant's grants or its users, only one slice of users with the agents and grants
 * that slice can reach, or one page of agents.
 */

const USERS_PER_SLICE = 200;
const PAGE = 500;

async function* userSlices(knex: Knex, tenantId: string): AsyncGenerator<string[]> {
  let after = '';
  for (;;) {
    const ids = (
      await knex('users')
        .where({ tenant_id: tenantId })
        .andWhere('id', '>', after)
        .orderBy('id')
        .limit(USERS_PER_SLICE)
        .select('id')
    ).map((r) => String(r.id));
    if (!ids.length) return;
    after = ids[ids.length - 1]!;
    yield ids;
  }
}

/** Pages of rows by id, each page one query `page(after)` returning at most PAGE rows. */
async function* pages(
  page: (after: string) => Promise<Record<string, unknown>[]>,
): AsyncGenerator<Record<string, unknown>[]> {
  let after = '';
  for (;;) {
    const rows = await page(after);
    if (rows.length) yield rows;
    if (rows.length < PAGE) return;
    after = String(rows[rows.length - 1]!.id);
  }
}

/** An agent as an admin's decision needs it: admins hold every agent whatever its grants. */
function bare(r: Record<string, unknown>): CheckedAgent {
  return {
    id: String(r.id),
    name: String(r.name),
    accessType: r.access_type as CheckedAgent['accessType'],
    createdBy: (r.created_by as string | null) ?? null,
    grants: [],
    dataSources: [],
  };
}

const agentPages = (knex: Knex, tenantId: string) =>
  pages((after) =>
    knex('agents')
      .where({ tenant_id: tenantId })
      .andWhere('id', '>', after)
      .orderBy('id')
      .limit(PAGE)
      .select('id', 'name', 'access_type', 'created_by'),
  );

/**
 * What deciding a slice of non-admin users needs: the agents they could reach (organization-wide,
 * granted to them or their groups, private ones they created) with only the grants on them or
 * their groups, and each user's candidates among those agents in id order.
 */
async function memberSlice(
  knex: Knex,
  tenantId: string,
  members: CheckedUser[],
): Promise<{ names: Names; candidates: (u: CheckedUser) => CheckedAgent[] }> {
  if (!members.length)
    return { names: { groups: new Map(), idpGroups: new Map(), rules: new Map() }, candidates: () => [] };
  const userIds = members.map((u) => u.id);
  const names = await loadNames(knex, tenantId, members, []);
  const groupIds = [...names.groups.keys()];
  const ids = new Set<string>();
  // The slice's users may sit in more groups than one IN list holds: each list is split on its own.
  const grantedTo = (type: 'user' | 'group', subjects: string[]) =>
    inChunks(knex, subjects, (part) =>
      knex('agent_grants')
        .where({ tenant_id: tenantId, subject_type: type })
        .whereIn('subject_id', part)
        .distinct('agent_id'),
    );
  for (const r of [...(await grantedTo('user', userIds)), ...(await grantedTo('group', groupIds))])
    ids.add(String(r.agent_id));
  const reachable = await knex('agents')
    .where({ tenant_id: tenantId })
    .andWhere((w) =>
      w
        .where('access_type', 'organization')
        .orWhere((p) => p.where('access_type', 'private').whereIn('created_by', userIds)),
    )
    .select('id');
  for (const r of reachable) ids.add(String(r.id));
  const agents = await loadAgents(knex, tenantId, [...ids], { userIds, groupIds });
  // The agents' rule and IdP group names, read once per slice.
  const agentNames = await loadNames(knex, tenantId, [], agents.values());
  const merged = {
    groups: names.groups,
    idpGroups: new Map([...agentNames.idpGroups, ...names.idpGroups]),
    rules: new Map([...agentNames.rules, ...names.rules]),
  };
  const bySubject = new Map<string, Set<string>>();
  const open: string[] = [];
  for (const a of agents.values()) {
    if (a.accessType === 'organization') open.push(a.id);
    for (const g of a.grants) {
      const k = `${g.subjectType}:${g.subjectId}`;
      (bySubject.get(k) ?? bySubject.set(k, new Set()).get(k)!).add(a.id);
    }
  }
  const candidates = (u: CheckedUser): CheckedAgent[] => {
    const set = new Set<string>(open);
    for (const a of bySubject.get(`user:${u.id}`) ?? []) set.add(a);
    for (const gid of names.groups.keys()) for (const a of bySubject.get(`group:${gid}`) ?? []) set.add(a);
    for (const a of agents.values()) if (a.accessType === 'private' && a.createdBy === u.id) set.add(a.id);
    return [...set].sort().map((id) => agents.get(id)!);
  };
  return { names: merged, candidates };
}

/** Each active user of the tenant in id order, with their decided agents, one user at a time. */
async function* decisions(
  knex: Knex,
  tenantId: string,
  at: number,
): AsyncGenerator<{ user: CheckedUser; access: AsyncIterable<{ agent: CheckedAgent; d: AgentAccess }> }> {
  for await (const ids of userSlices(knex, tenantId)) {
    const users = await loadUsers(knex, tenantId, ids);
    const active = ids
      .map((id) => users.get(id))
      .filter((u): u is CheckedUser => u !== undefined && u.status === 'active');
    const slice = await memberSlice(
      knex,
      tenantId,
      active.filter((u) => u.role !== 'admin'),
    );
    for (const user of active) {
      const access =
        user.role === 'admin'
          ? (async function* () {
              // An admin holds every agent: read page by page rather than all at once.
              for await (const page of agentPages(knex, tenantId)) {
                for (const agent of page.map(bare)) yield { agent, d: decide(user, agent, at, slice.names) };
              }
            })()
          : (async function* () {
              for (const agent of slice.candidates(user)) yield { agent, d: decide(user, agent, at, slice.names) };
            })();
      yield { user, access };
    }
  }
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
  for await (const { user, access } of decisions(knex, tenantId, at)) {
    let rows: MatrixRow[] = [];
    for await (const { agent: a, d } of access) {
      if (d.level === 'none') continue;
      rows.push({
        userId: user.id,
        email: user.email,
        agentId: a.id,
        agentName: a.name,
        accessType: a.accessType,
        level: d.level,
      });
      if (rows.length === PAGE) {
        yield rows;
        rows = [];
      }
    }
    if (rows.length) yield rows;
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
export async function* groupMembership(
  knex: Knex,
  tenantId: string,
  by: 'group' | 'user',
): AsyncGenerator<MembershipRow[]> {
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
    if (after)
      q.andWhere((w) =>
        w
          .where(first, '>', after![0]!)
          .orWhere((w2) => w2.where(first, '=', after![0]!).andWhere(second, '>', after![1]!)),
      );
    const rows = await q;
    if (!rows.length) return;
    const last = rows[rows.length - 1] as Record<string, unknown>;
    after =
      by === 'group' ? [String(last.group_id), String(last.user_id)] : [String(last.user_id), String(last.group_id)];
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
  let without: CoverageRow[] = [];
  for await (const { user, access } of decisions(knex, tenantId, at)) {
    let any = false;
    for await (const { d } of access) {
      if (d.level !== 'none') {
        any = true;
        break;
      }
    }
    if (!any)
      without.push({ section: 'user_without_access', id: user.id, name: user.email, detail: 'no agent access' });
    if (without.length === PAGE) {
      yield without;
      without = [];
    }
  }
  yield without;
  for await (const page of pages((after) =>
    knex('agents as a')
      .where({ 'a.tenant_id': tenantId, 'a.access_type': 'groups' })
      .andWhere('a.id', '>', after)
      .whereNotExists(
        knex('agent_grants as g')
          .whereRaw('g.tenant_id = a.tenant_id AND g.agent_id = a.id')
          .andWhere('g.subject_type', 'group')
          .select(knex.raw('1')),
      )
      .orderBy('a.id')
      .limit(PAGE)
      .select('a.id', 'a.name'),
  )) {
    yield page.map((a) => ({
      section: 'agent_without_groups' as const,
      id: String(a.id),
      name: String(a.name),
      detail: 'restricted to groups but none assigned',
    }));
  }
  for await (const page of pages((after) =>
    knex('local_groups as g')
      .where('g.tenant_id', tenantId)
      .andWhere('g.id', '>', after)
      .whereNotExists(
        knex('group_members as m')
          .whereRaw(`m.tenant_id = g.tenant_id AND m.group_id = g.id AND ${liveDerivedSql('m')}`)
          .select(knex.raw('1')),
      )
      .orderBy('g.id')
      .limit(PAGE)
      .select('g.id', 'g.name'),
  )) {
    yield page.map((g) => ({
      section: 'empty_group' as const,
      id: String(g.id),
      name: String(g.name),
      detail: 'no members',
    }));
  }
  const horizon = at + days * 86_400_000;
  // End dates are local calendar days: a day either side covers every time zone's offset.
  const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
  for await (const page of pages((after) =>
    knex('agent_grants')
      .where({ tenant_id: tenantId })
      .andWhere('id', '>', after)
      .whereRaw(liveDerivedSql('agent_grants'))
      .whereNotNull('end_date')
      .andWhere('end_date', '>=', day(at - 2 * 86_400_000))
      .andWhere('end_date', '<=', day(horizon + 2 * 86_400_000))
      .orderBy('id')
      .limit(PAGE)
      .select('id', 'agent_id'),
  )) {
    const agents = await loadAgents(
      knex,
      tenantId,
      page.map((r) => String(r.agent_id)),
      { grantIds: page.map((r) => String(r.id)) },
    );
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
    yield expiring.sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
  }
}
