import type { Knex } from 'knex';
import type { Ctx } from '../context.js';
import { recordEvents, type AuditInput } from '../audit/record.js';
import { eachChunk, inChunks, inListChunks, insertChunked } from '../db/batch.js';
import { newId } from '../db/ids.js';
import { matcher, type MappingRule, type MatchableGroup } from './rules.js';

/**
 * The mapping engine: recomputes what rules derive for a set of users and writes only the
 * difference. Derived rows carry (rule_id, idp_group_id); rows an admin made (empty
 * provenance) are never read or written here, so a manual membership and a derived one for the
 * same user and group live side by side and removing one leaves the other.
 */

export interface DerivedMembership {
  groupId: string;
  userId: string;
  role: 'member' | 'manager';
  ruleId: string;
  /** The rule version that produced the row: it counts only while the rule is at it. */
  ruleVersion: number;
  idpGroupId: string;
}

export interface DerivedGrant {
  agentId: string;
  userId: string;
  permission: 'view_use' | 'edit';
  startDate: string | null;
  endDate: string | null;
  timeZone: string;
  ruleId: string;
  ruleVersion: number;
  idpGroupId: string;
}

export interface SyncDiff {
  membershipsAdded: DerivedMembership[];
  membershipsRemoved: DerivedMembership[];
  grantsAdded: DerivedGrant[];
  grantsRemoved: (DerivedGrant & { id: string })[];
  /** Rows that stay as they are but were produced by an older version of their rule. */
  membershipsRestamped: DerivedMembership[];
  grantsRestamped: (DerivedGrant & { id: string })[];
}

export function emptyDiff(): SyncDiff {
  return {
    membershipsAdded: [],
    membershipsRemoved: [],
    grantsAdded: [],
    grantsRemoved: [],
    membershipsRestamped: [],
    grantsRestamped: [],
  };
}

export interface SyncScope {
  /** The rules whose output is computed (enabled ones only count). */
  rules: MappingRule[];
  /** Existing derived rows considered: those of these rule ids, or all derived rows when absent. */
  ruleIds?: string[];
  /** Compute the difference without writing it (preview). */
  dryRun?: boolean;
}

function rowsOf(result: unknown): Record<string, unknown>[] {
  // mysql2 answers [rows, fields]; better-sqlite3 answers rows.
  return Array.isArray(result) && Array.isArray(result[0])
    ? (result[0] as Record<string, unknown>[])
    : (result as Record<string, unknown>[]);
}

/**
 * Each user's IdP groups, direct and through nesting: membership of a child IdP group counts for
 * rules matching its parents. The recursive steps say CROSS JOIN because SQLite then keeps the
 * written join order (walk from the few rows found so far into the indexed table); with a plain
 * JOIN it scanned every membership of the tenant per step. MariaDB reads CROSS JOIN … ON as JOIN.
 */
export async function idpGroupsOfUsers(
  trx: Knex,
  tenantId: string,
  userIds: string[],
): Promise<Map<string, MatchableGroup[]>> {
  const out = new Map<string, MatchableGroup[]>();
  for (const chunk of inListChunks(trx, userIds, 3)) {
    const rows = rowsOf(
      await trx.raw(
        `WITH RECURSIVE up(group_id, user_id) AS (
           SELECT group_id, member_id FROM idp_group_members
            WHERE tenant_id = ? AND member_type = 'User' AND member_id IN (${chunk.map(() => '?').join(',')})
           UNION
           SELECT m.group_id, up.user_id FROM up CROSS JOIN idp_group_members m
               ON m.tenant_id = ? AND m.member_id = up.group_id AND m.member_type = 'Group'
         )
         SELECT up.user_id, g.id, g.source, g.connection_id, g.external_id, g.display_name
           FROM up CROSS JOIN idp_groups g ON g.tenant_id = ? AND g.id = up.group_id`,
        [tenantId, ...chunk, tenantId, tenantId],
      ),
    );
    for (const r of rows) {
      const list = out.get(String(r.user_id)) ?? [];
      list.push({
        id: String(r.id),
        source: r.source as MatchableGroup['source'],
        connectionId: String(r.connection_id),
        externalId: (r.external_id as string | null) ?? null,
        displayName: String(r.display_name),
      });
      out.set(String(r.user_id), list);
    }
  }
  return out;
}

/** The users under IdP groups: their members and the members of groups nested in them. */
export async function usersUnderIdpGroups(trx: Knex, tenantId: string, groupIds: string[]): Promise<string[]> {
  const users = new Set<string>();
  for (const chunk of inListChunks(trx, groupIds, 3)) {
    const rows = rowsOf(
      await trx.raw(
        `WITH RECURSIVE down(group_id) AS (
           SELECT id FROM idp_groups WHERE tenant_id = ? AND id IN (${chunk.map(() => '?').join(',')})
           UNION
           SELECT m.member_id FROM down CROSS JOIN idp_group_members m
               ON m.tenant_id = ? AND m.group_id = down.group_id AND m.member_type = 'Group'
         )
         SELECT DISTINCT m.member_id FROM down CROSS JOIN idp_group_members m
             ON m.tenant_id = ? AND m.group_id = down.group_id AND m.member_type = 'User'`,
        [tenantId, ...chunk, tenantId, tenantId],
      ),
    );
    for (const r of rows) users.add(String(r.member_id));
  }
  return [...users];
}

/** What the targets of the rules are now: missing local groups and agents give nothing. */
async function targets(trx: Knex, tenantId: string, rules: MappingRule[]) {
  const groupIds = [...new Set(rules.flatMap((r) => r.actions.groups.map((g) => g.groupId)))];
  const agentIds = [...new Set(rules.flatMap((r) => r.actions.agents.map((a) => a.agentId)))];
  const groups = await inChunks(trx, groupIds, (c) =>
    trx('local_groups').where({ tenant_id: tenantId }).whereIn('id', c).select('id', 'name'),
  );
  const agents = await inChunks(trx, agentIds, (c) =>
    trx('agents')
      .where({ tenant_id: tenantId })
      .whereIn('id', c)
      .whereNot('access_type', 'private')
      .select('id', 'name'),
  );
  const tenant = await trx('tenants').where({ id: tenantId }).select('time_zone').first();
  return {
    groups: new Map(groups.map((g: Record<string, unknown>) => [String(g.id), String(g.name)])),
    agents: new Map(agents.map((a: Record<string, unknown>) => [String(a.id), String(a.name)])),
    timeZone: String(tenant?.time_zone ?? 'UTC'),
  };
}

const mKey = (m: DerivedMembership) => `${m.groupId}|${m.userId}|${m.ruleId}|${m.idpGroupId}`;
const gKey = (g: DerivedGrant) => `${g.agentId}|${g.userId}|${g.ruleId}|${g.idpGroupId}`;
const gSame = (a: DerivedGrant, b: DerivedGrant) =>
  a.permission === b.permission && a.startDate === b.startDate && a.endDate === b.endDate && a.timeZone === b.timeZone;

async function desired(trx: Knex, tenantId: string, userIds: string[], rules: MappingRule[]) {
  const enabled = rules.filter((r) => r.enabled);
  const memberships = new Map<string, DerivedMembership>();
  const grants = new Map<string, DerivedGrant>();
  if (!enabled.length || !userIds.length) return { memberships, grants, names: await targets(trx, tenantId, []) };
  const names = await targets(trx, tenantId, enabled);
  const statuses = new Map<string, string>();
  for (const u of await inChunks(trx, userIds, (part) =>
    trx('users').where({ tenant_id: tenantId }).whereIn('id', part).select('id', 'status'),
  )) {
    statuses.set(String(u.id), String(u.status));
  }
  const closure = await idpGroupsOfUsers(trx, tenantId, userIds);
  const compiled = enabled.map((r) => ({ rule: r, matches: matcher(r.match) }));
  for (const userId of userIds) {
    const status = statuses.get(userId);
    // A deactivated user's derived access is suspended; it comes back on reactivation.
    if (status === undefined || status === 'suspended') continue;
    for (const g of closure.get(userId) ?? []) {
      for (const { rule, matches } of compiled) {
        if (!matches(g)) continue;
        for (const a of rule.actions.groups) {
          if (!names.groups.has(a.groupId)) continue;
          const m: DerivedMembership = {
            groupId: a.groupId,
            userId,
            role: a.role,
            ruleId: rule.id,
            ruleVersion: rule.version,
            idpGroupId: g.id,
          };
          memberships.set(mKey(m), m);
        }
        for (const a of rule.actions.agents) {
          if (!names.agents.has(a.agentId)) continue;
          const grant: DerivedGrant = {
            agentId: a.agentId,
            userId,
            permission: a.permission,
            startDate: a.startDate ?? null,
            endDate: a.endDate ?? null,
            timeZone: a.timeZone ?? names.timeZone,
            ruleId: rule.id,
            ruleVersion: rule.version,
            idpGroupId: g.id,
          };
          grants.set(gKey(grant), grant);
        }
      }
    }
  }
  return { memberships, grants, names };
}

async function existing(trx: Knex, tenantId: string, userIds: string[], ruleIds?: string[]) {
  const memberships: DerivedMembership[] = [];
  const grants: (DerivedGrant & { id: string })[] = [];
  const ruleSet = new Set(ruleIds);
  for (const chunk of inListChunks(trx, userIds, 3)) {
    const mq = trx('group_members').where({ tenant_id: tenantId }).whereIn('user_id', chunk).whereNot('rule_id', '');
    const gq = trx('agent_grants')
      .where({ tenant_id: tenantId, subject_type: 'user' })
      .whereIn('subject_id', chunk)
      .whereNot('rule_id', '');
    // The rules are picked here, not in SQL: their list would share the statement's bindings.
    const picked = (r: Record<string, unknown>) => !ruleIds || ruleSet.has(String(r.rule_id));
    for (const r of (await mq).filter(picked)) {
      memberships.push({
        groupId: String(r.group_id),
        userId: String(r.user_id),
        role: r.role,
        ruleId: String(r.rule_id),
        ruleVersion: Number(r.rule_version),
        idpGroupId: String(r.idp_group_id),
      });
    }
    for (const r of (await gq).filter(picked)) {
      grants.push({
        id: String(r.id),
        agentId: String(r.agent_id),
        userId: String(r.subject_id),
        permission: r.permission,
        startDate: (r.start_date as string | null) ?? null,
        endDate: (r.end_date as string | null) ?? null,
        timeZone: String(r.time_zone),
        ruleId: String(r.rule_id),
        ruleVersion: Number(r.rule_version),
        idpGroupId: String(r.idp_group_id),
      });
    }
  }
  return { memberships, grants };
}

/**
 * Brings the derived memberships and grants of these users in line with the rules in scope, in
 * the caller's transaction, and audits each change with the rule as actor.
 */
export async function syncUsers(trx: Knex, ctx: Ctx, userIds: string[], scope: SyncScope): Promise<SyncDiff> {
  const ids = [...new Set(userIds)];
  const want = await desired(trx, ctx.tenantId, ids, scope.rules);
  const have = await existing(trx, ctx.tenantId, ids, scope.ruleIds);
  const diff = emptyDiff();

  const haveM = new Map<string, DerivedMembership>();
  for (const m of have.memberships) {
    const k = mKey(m);
    const w = want.memberships.get(k);
    if (!w || w.role !== m.role) diff.membershipsRemoved.push(m);
    else {
      haveM.set(k, m);
      if (w.ruleVersion !== m.ruleVersion) diff.membershipsRestamped.push(w);
    }
  }
  for (const [k, m] of want.memberships) if (!haveM.has(k)) diff.membershipsAdded.push(m);

  const kept = new Set<string>();
  for (const g of have.grants) {
    const k = gKey(g);
    const w = want.grants.get(k);
    // A duplicate left by a race between two processes is removed too: one row per key.
    if (!w || !gSame(w, g) || kept.has(k)) diff.grantsRemoved.push(g);
    else {
      kept.add(k);
      if (w.ruleVersion !== g.ruleVersion) diff.grantsRestamped.push({ ...w, id: g.id });
    }
  }
  for (const [k, g] of want.grants) if (!kept.has(k)) diff.grantsAdded.push(g);

  if (!scope.dryRun) await apply(trx, ctx, diff, want.names, scope.rules);
  return diff;
}

async function apply(
  trx: Knex,
  ctx: Ctx,
  diff: SyncDiff,
  names: Awaited<ReturnType<typeof targets>>,
  rules: MappingRule[],
): Promise<void> {
  const tenantId = ctx.tenantId;
  const now = ctx.now.getTime();
  // One statement per (group, rule, IdP group) rather than per row: removing 100 users from an
  // IdP group matched by 3 rules is a handful of deletes.
  const removals = new Map<string, { m: DerivedMembership; users: string[] }>();
  for (const m of diff.membershipsRemoved) {
    const k = `${m.groupId}|${m.ruleId}|${m.idpGroupId}`;
    (removals.get(k) ?? removals.set(k, { m, users: [] }).get(k)!).users.push(m.userId);
  }
  for (const { m, users } of removals.values()) {
    await eachChunk(trx, users, (part) =>
      trx('group_members')
        .where({ tenant_id: tenantId, group_id: m.groupId, rule_id: m.ruleId, idp_group_id: m.idpGroupId })
        .whereIn('user_id', part)
        .delete(),
    );
  }
  await eachChunk(
    trx,
    diff.grantsRemoved.map((g) => g.id),
    (part) => trx('agent_grants').where({ tenant_id: tenantId }).whereIn('id', part).delete(),
  );
  const mRows = diff.membershipsAdded.map((m) => ({
    tenant_id: tenantId,
    group_id: m.groupId,
    user_id: m.userId,
    role: m.role,
    rule_id: m.ruleId,
    rule_version: m.ruleVersion,
    idp_group_id: m.idpGroupId,
    created_at: now,
  }));
  await insertChunked(trx, 'group_members', mRows, { conflict: (q) => q.onConflict().ignore() });
  const gRows = diff.grantsAdded.map((g) => ({
    tenant_id: tenantId,
    id: newId(),
    agent_id: g.agentId,
    subject_type: 'user',
    subject_id: g.userId,
    permission: g.permission,
    start_date: g.startDate,
    end_date: g.endDate,
    time_zone: g.timeZone,
    rule_id: g.ruleId,
    rule_version: g.ruleVersion,
    idp_group_id: g.idpGroupId,
    created_at: now,
  }));
  await insertChunked(trx, 'agent_grants', gRows);
  await restamp(trx, tenantId, diff);

  const ruleNames = new Map(rules.map((r) => [r.id, r.name]));
  const actor = (ruleId: string): Ctx['actor'] => ({
    type: 'rule',
    id: ruleId,
    display: ruleNames.get(ruleId) ?? 'deleted mapping rule',
  });
  const events: AuditInput[] = [
    ...diff.membershipsAdded.map((m) => ({
      event: 'group.member_added',
      actor: actor(m.ruleId),
      entity: { type: 'group', id: m.groupId, name: names.groups.get(m.groupId) ?? null },
      before: null,
      after: { userId: m.userId, role: m.role, ruleId: m.ruleId, idpGroupId: m.idpGroupId },
    })),
    ...diff.membershipsRemoved.map((m) => ({
      event: 'group.member_removed',
      actor: actor(m.ruleId),
      entity: { type: 'group', id: m.groupId, name: names.groups.get(m.groupId) ?? null },
      before: { userId: m.userId, role: m.role, ruleId: m.ruleId, idpGroupId: m.idpGroupId },
      after: null,
    })),
    ...diff.grantsAdded.map((g) => ({
      event: 'agent.grant_created',
      actor: actor(g.ruleId),
      entity: { type: 'agent', id: g.agentId, name: names.agents.get(g.agentId) ?? null },
      before: null,
      after: {
        agentId: g.agentId,
        agentName: names.agents.get(g.agentId) ?? null,
        userId: g.userId,
        permission: g.permission,
        startDate: g.startDate,
        endDate: g.endDate,
        timeZone: g.timeZone,
        ruleId: g.ruleId,
        idpGroupId: g.idpGroupId,
      },
    })),
    ...diff.grantsRemoved.map((g) => ({
      event: 'agent.grant_removed',
      actor: actor(g.ruleId),
      entity: { type: 'agent', id: g.agentId, name: names.agents.get(g.agentId) ?? null },
      before: {
        agentId: g.agentId,
        userId: g.userId,
        permission: g.permission,
        startDate: g.startDate,
        endDate: g.endDate,
        timeZone: g.timeZone,
        ruleId: g.ruleId,
        idpGroupId: g.idpGroupId,
      },
      after: null,
    })),
  ];
  await recordEvents(trx, ctx, events);
}

/**
 * Moves rows that a rule's new version produces unchanged to that version: one statement per
 * (group or agent, rule, IdP group) for the users concerned. Not audited: the user's access is
 * what it was before the rule changed.
 */
async function restamp(trx: Knex, tenantId: string, diff: SyncDiff): Promise<void> {
  const byTarget = new Map<string, { m: DerivedMembership; users: string[] }>();
  for (const m of diff.membershipsRestamped) {
    const k = `${m.groupId}|${m.ruleId}|${m.idpGroupId}|${m.ruleVersion}`;
    (byTarget.get(k) ?? byTarget.set(k, { m, users: [] }).get(k)!).users.push(m.userId);
  }
  for (const { m, users } of byTarget.values()) {
    await eachChunk(trx, users, (part) =>
      trx('group_members')
        .where({ tenant_id: tenantId, group_id: m.groupId, rule_id: m.ruleId, idp_group_id: m.idpGroupId })
        .whereIn('user_id', part)
        .update({ rule_version: m.ruleVersion }),
    );
  }
  const byVersion = new Map<number, string[]>();
  for (const g of diff.grantsRestamped)
    (byVersion.get(g.ruleVersion) ?? byVersion.set(g.ruleVersion, []).get(g.ruleVersion)!).push(g.id);
  for (const [version, ids] of byVersion) {
    await eachChunk(trx, ids, (part) =>
      trx('agent_grants').where({ tenant_id: tenantId }).whereIn('id', part).update({ rule_version: version }),
    );
  }
}
