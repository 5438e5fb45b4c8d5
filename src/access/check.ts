import type { Knex } from 'knex';
import { inChunks, inListChunks } from '../db/batch.js';
import { describeWindow, windowState, type GrantWindow } from './grant-window.js';
import { liveDerivedSql } from '../mapping/live.js';

/**
 * The access check (seed 004): may a user view, use, edit, delete or manage the permissions of
 * an agent, which of its data sources may they retrieve from, and why. Reads current state on
 * every call; loaders work in batches so a thousand checks cost a handful of queries.
 */

export type AgentLevel = 'none' | 'view_use' | 'edit';
export type AgentAction = 'view' | 'use' | 'edit' | 'delete' | 'managePermissions';

export interface AgentAccess {
  view: boolean;
  use: boolean;
  edit: boolean;
  delete: boolean;
  managePermissions: boolean;
  level: AgentLevel;
  dataSources: { id: string; name: string }[];
  reasons: string[];
}

interface GroupNode {
  id: string;
  name: string;
  parentId: string | null;
  active: boolean;
}

interface Membership {
  groupId: string;
  role: 'member' | 'manager';
  ruleId: string;
  idpGroupId: string;
}

export interface CheckedUser {
  id: string;
  email: string | null;
  role: 'admin' | 'member';
  status: 'invited' | 'active' | 'suspended';
  memberships: Membership[];
}

interface Grant extends GrantWindow {
  id: string;
  subjectType: 'group' | 'user';
  subjectId: string;
  permission: 'view_use' | 'edit';
  ruleId: string;
  idpGroupId: string;
}

export interface CheckedAgent {
  id: string;
  name: string;
  accessType: 'organization' | 'groups' | 'private';
  createdBy: string | null;
  grants: Grant[];
  dataSources: { id: string; name: string; access: 'all_agent_users' | 'groups'; groupIds: string[] }[];
}

/** Names used in reasons: groups (local and IdP) and mapping rules. */
export interface Names {
  groups: Map<string, GroupNode>;
  idpGroups: Map<string, string>;
  rules: Map<string, string>;
}

/** Users with their direct group memberships. */
export async function loadUsers(knex: Knex, tenantId: string, ids: string[]): Promise<Map<string, CheckedUser>> {
  const unique = [...new Set(ids)];
  const users = await inChunks(knex, unique, (c) =>
    knex('users').where({ tenant_id: tenantId }).whereIn('id', c).select('id', 'email', 'role', 'status'),
  );
  const rows = await inChunks(knex, unique, (c) =>
    knex('group_members')
      .where({ tenant_id: tenantId })
      .whereIn('user_id', c)
      .whereRaw(liveDerivedSql('group_members'))
      .select('user_id', 'group_id', 'role', 'rule_id', 'idp_group_id'),
  );
  const out = new Map<string, CheckedUser>();
  for (const u of users) {
    out.set(String(u.id), {
      id: String(u.id),
      email: (u.email as string | null) ?? null,
      role: u.role,
      status: u.status,
      memberships: [],
    });
  }
  for (const r of rows) {
    out.get(String(r.user_id))?.memberships.push({
      groupId: String(r.group_id),
      role: r.role,
      ruleId: String(r.rule_id),
      idpGroupId: String(r.idp_group_id),
    });
  }
  return out;
}

/**
 * The groups the users belong to and all their ancestors, by one recursive query: a check
 * touches the user's branch of the group tree, never the whole tree.
 */
async function loadGroupClosure(knex: Knex, tenantId: string, groupIds: string[]): Promise<Map<string, GroupNode>> {
  const out = new Map<string, GroupNode>();
  const unique = [...new Set(groupIds)];
  for (const chunk of inListChunks(knex, unique, 3)) {
    const rows = await knex.raw(
      `WITH RECURSIVE up(id) AS (
         SELECT id FROM local_groups WHERE tenant_id = ? AND id IN (${chunk.map(() => '?').join(',')})
         UNION
         SELECT g.parent_id FROM up CROSS JOIN local_groups g ON g.tenant_id = ? AND g.id = up.id AND g.parent_id IS NOT NULL
       )
       SELECT g.id, g.name, g.parent_id, g.status FROM up CROSS JOIN local_groups g ON g.tenant_id = ? AND g.id = up.id`,
      [tenantId, ...chunk, tenantId, tenantId],
    );
    const list: Record<string, unknown>[] = Array.isArray(rows) && Array.isArray(rows[0]) ? rows[0] : rows;
    for (const g of list) {
      out.set(String(g.id), {
        id: String(g.id),
        name: String(g.name),
        parentId: (g.parent_id as string | null) ?? null,
        active: g.status === 'active',
      });
    }
  }
  return out;
}

/**
 * Which grants to load: those held by some users and groups (deciding for users whose groups,
 * with ancestors, are among them comes out the same as with every grant), or a page of grants.
 */
export type GrantFilter = { userIds: string[]; groupIds: string[] } | { grantIds: string[] };

/**
 * The grants of `grantsOf` held by these users or groups, in id order. Users may sit in more
 * groups than one IN list holds, so each list is split on its own.
 */
async function grantsHeldBy(
  knex: Knex,
  agentIds: string[],
  only: { userIds: string[]; groupIds: string[] },
  grantsOf: (agentIds: string[]) => Knex.QueryBuilder,
): Promise<Record<string, unknown>[]> {
  const held = (type: 'user' | 'group', subjects: string[]) =>
    inChunks(knex, subjects, (part) =>
      inChunks<string, Record<string, unknown>>(knex, agentIds, (c) =>
        grantsOf(c).where('subject_type', type).whereIn('subject_id', part),
      ),
    );
  const rows = [...(await held('user', only.userIds)), ...(await held('group', only.groupIds))];
  return rows.sort((a, b) => (String(a.id) < String(b.id) ? -1 : String(a.id) > String(b.id) ? 1 : 0));
}

/**
 * Agents with their grants and data sources. A filter keeps the rest of the agents' grants (rule-
 * derived per-user grants grow with the tenant) in the database.
 */
export async function loadAgents(
  knex: Knex,
  tenantId: string,
  ids: string[],
  only?: GrantFilter,
): Promise<Map<string, CheckedAgent>> {
  const unique = [...new Set(ids)];
  const agents = await inChunks(knex, unique, (c) =>
    knex('agents').where({ tenant_id: tenantId }).whereIn('id', c).select('id', 'name', 'access_type', 'created_by'),
  );
  // Every filter starts from this one query, so a condition on which grants count is written once.
  const grantsOf = (c: string[]) =>
    knex('agent_grants').where({ tenant_id: tenantId }).whereIn('agent_id', c).whereRaw(liveDerivedSql('agent_grants'));
  const grants =
    only && !('grantIds' in only)
      ? await grantsHeldBy(knex, unique, only, grantsOf)
      : await inChunks(knex, unique, (c) => (only ? grantsOf(c).whereIn('id', only.grantIds) : grantsOf(c)));
  const sources = await inChunks(knex, unique, (c) =>
    knex('agent_data_sources').where({ tenant_id: tenantId }).whereIn('agent_id', c).orderBy('id'),
  );
  const sourceGroups = await inChunks(
    knex,
    sources.map((s) => String(s.id)),
    (c) => knex('data_source_groups').where({ tenant_id: tenantId }).whereIn('data_source_id', c),
  );
  const out = new Map<string, CheckedAgent>();
  for (const a of agents) {
    out.set(String(a.id), {
      id: String(a.id),
      name: String(a.name),
      accessType: a.access_type,
      createdBy: (a.created_by as string | null) ?? null,
      grants: [],
      dataSources: [],
    });
  }
  for (const g of grants) {
    out.get(String(g.agent_id))?.grants.push({
      id: String(g.id),
      subjectType: g.subject_type,
      subjectId: String(g.subject_id),
      permission: g.permission,
      startDate: (g.start_date as string | null) ?? null,
      endDate: (g.end_date as string | null) ?? null,
      timeZone: String(g.time_zone),
      ruleId: String(g.rule_id),
      idpGroupId: String(g.idp_group_id),
    });
  }
  const bySource = new Map<string, string[]>();
  for (const sg of sourceGroups)
    bySource.set(String(sg.data_source_id), [...(bySource.get(String(sg.data_source_id)) ?? []), String(sg.group_id)]);
  for (const s of sources) {
    out.get(String(s.agent_id))?.dataSources.push({
      id: String(s.id),
      name: String(s.name),
      access: s.access,
      groupIds: bySource.get(String(s.id)) ?? [],
    });
  }
  return out;
}

/** Loads the names reasons need: the users' group branches, derived rows' IdP groups and rules. */
export async function loadNames(
  knex: Knex,
  tenantId: string,
  users: Iterable<CheckedUser>,
  agents: Iterable<CheckedAgent>,
): Promise<Names> {
  const groupIds: string[] = [];
  const idpIds = new Set<string>();
  const ruleIds = new Set<string>();
  for (const u of users) {
    for (const m of u.memberships) {
      groupIds.push(m.groupId);
      if (m.idpGroupId) idpIds.add(m.idpGroupId);
      if (m.ruleId) ruleIds.add(m.ruleId);
    }
  }
  for (const a of agents) {
    for (const g of a.grants) {
      if (g.idpGroupId) idpIds.add(g.idpGroupId);
      if (g.ruleId) ruleIds.add(g.ruleId);
    }
  }
  const groups = await loadGroupClosure(knex, tenantId, groupIds);
  const idp = await inChunks(knex, [...idpIds], (c) =>
    knex('idp_groups').where({ tenant_id: tenantId }).whereIn('id', c).select('id', 'display_name'),
  );
  const rules = await inChunks(knex, [...ruleIds], (c) =>
    knex('mapping_rules').where({ tenant_id: tenantId }).whereIn('id', c).select('id', 'name'),
  );
  return {
    groups,
    idpGroups: new Map(idp.map((g) => [String(g.id), String(g.display_name)])),
    rules: new Map(rules.map((r: Record<string, unknown>) => [String(r.id), String(r.name)])),
  };
}

const NONE: Omit<AgentAccess, 'reasons'> = {
  view: false,
  use: false,
  edit: false,
  delete: false,
  managePermissions: false,
  level: 'none',
  dataSources: [],
};

function derivation(names: Names, ruleId: string, idpGroupId: string): string {
  if (!ruleId) return '';
  return `via rule "${names.rules.get(ruleId) ?? ruleId}" from IdP group "${names.idpGroups.get(idpGroupId) ?? idpGroupId}"`;
}

/** A user's active groups with, for each, the direct membership it is reached through. */
function reachableGroups(u: CheckedUser, names: Names): Map<string, { via: GroupNode; membership: Membership }[]> {
  const out = new Map<string, { via: GroupNode; membership: Membership }[]>();
  for (const m of u.memberships) {
    const direct = names.groups.get(m.groupId);
    // An archived group gives its members nothing, through itself or its ancestors.
    if (!direct?.active) continue;
    const seen = new Set<string>();
    for (
      let g: GroupNode | undefined = direct;
      g && !seen.has(g.id);
      g = g.parentId ? names.groups.get(g.parentId) : undefined
    ) {
      seen.add(g.id);
      out.set(g.id, [...(out.get(g.id) ?? []), { via: direct, membership: m }]);
    }
  }
  return out;
}

function groupLabel(g: GroupNode, names: Names): string {
  const parent = g.parentId ? names.groups.get(g.parentId) : undefined;
  return `group ${g.name}${parent ? ` (child of ${parent.name})` : ''}`;
}

/** How a grant reaches the user: who holds it, and what follows the grant in the sentence. */
interface Route {
  holder: string;
  tail: string;
}

function grantReason(grant: Grant, route: Route, names: Names): string {
  const window = describeWindow(grant);
  const when = window ? ` ${window}` : '';
  if (grant.subjectType === 'user' && grant.ruleId) {
    return `rule "${names.rules.get(grant.ruleId) ?? grant.ruleId}" grants ${grant.permission}${when} to members of IdP group "${names.idpGroups.get(grant.idpGroupId) ?? grant.idpGroupId}"`;
  }
  return `${route.holder} grants ${grant.permission}${when}${route.tail}`;
}

/** Decides one user's access to one agent at one instant, with the reasons. */
export function decide(u: CheckedUser | undefined, a: CheckedAgent, at: number, names: Names): AgentAccess {
  if (!u) return { ...NONE, reasons: ['the user does not exist or was deleted'] };
  if (u.status !== 'active') return { ...NONE, reasons: [`the user is ${u.status}: no access to any agent`] };
  if (u.role === 'admin') {
    return {
      view: true,
      use: true,
      edit: true,
      delete: true,
      managePermissions: true,
      level: 'edit',
      dataSources: a.dataSources.map(({ id, name }) => ({ id, name })),
      reasons: ['admin role: full access to every agent'],
    };
  }
  if (a.accessType === 'private') {
    if (a.createdBy === u.id) {
      return {
        ...NONE,
        view: true,
        use: true,
        edit: true,
        level: 'edit',
        dataSources: a.dataSources.map(({ id, name }) => ({ id, name })),
        reasons: ['creator of this private agent'],
      };
    }
    return { ...NONE, reasons: ['the agent is private: only its creator and admins may use it'] };
  }

  const reasons: string[] = [];
  const pending: string[] = [];
  let level: AgentLevel = 'none';
  const raise = (to: AgentLevel) => {
    if (to === 'edit' || level === 'none') level = to;
  };
  if (a.accessType === 'organization') {
    raise('view_use');
    reasons.push('the agent is available to the whole organization');
  }
  const reachable = reachableGroups(u, names);
  for (const grant of a.grants) {
    const routes: Route[] = [];
    let managedHere: GroupNode | undefined;
    if (grant.subjectType === 'user') {
      if (grant.subjectId === u.id) routes.push({ holder: 'a grant made to the user directly', tail: '' });
    } else {
      const holder = names.groups.get(grant.subjectId);
      const via = holder?.active ? reachable.get(grant.subjectId) : undefined;
      for (const { via: mine, membership } of via ?? []) {
        const derived = derivation(names, membership.ruleId, membership.idpGroupId);
        const membershipNote = derived ? `; the user's membership of ${mine.name} is ${derived}` : '';
        routes.push(
          mine.id === holder!.id
            ? { holder: groupLabel(holder!, names), tail: membershipNote }
            : {
                holder: `group ${holder!.name}`,
                tail: `, inherited by its descendant ${mine.name} of which the user is a member${membershipNote}`,
              },
        );
        if (membership.role === 'manager') managedHere = mine;
      }
    }
    if (!routes.length) continue;
    const state = windowState(grant, at);
    if (state !== 'in_force') {
      for (const r of routes)
        pending.push(
          `${grantReason(grant, r, names)}, not in force: ${state === 'ended' ? 'it has ended' : 'it has not started yet'}`,
        );
      continue;
    }
    raise(grant.permission);
    for (const r of routes) reasons.push(grantReason(grant, r, names));
    if (managedHere && grant.permission !== 'edit') {
      raise('edit');
      reasons.push(`manager of group ${managedHere.name}, which has access, so may edit the agent`);
    }
  }
  if (level === 'none') {
    return {
      ...NONE,
      reasons: [a.accessType === 'groups' ? 'no grant in force for the user or their groups' : 'no access', ...pending],
    };
  }
  const mineOrAncestors = new Set([...reachable.keys()].filter((id) => names.groups.get(id)?.active));
  const dataSources = a.dataSources
    .filter((s) => s.access === 'all_agent_users' || s.groupIds.some((g) => mineOrAncestors.has(g)))
    .map(({ id, name }) => ({ id, name }));
  return {
    ...NONE,
    view: true,
    use: true,
    edit: level === 'edit',
    level,
    dataSources,
    reasons: [...reasons, ...pending],
  };
}

/** Whether one action is allowed, from a decision. */
export function allows(access: AgentAccess, action: AgentAction): boolean {
  return access[action];
}

/** Checks many (user, agent) pairs at one instant with a fixed number of queries. */
export async function checkMany(
  knex: Knex,
  tenantId: string,
  pairs: { userId: string; agentId: string }[],
  at: number,
): Promise<{ users: Map<string, CheckedUser>; agents: Map<string, CheckedAgent>; decisions: AgentAccess[] }> {
  const users = await loadUsers(
    knex,
    tenantId,
    pairs.map((p) => p.userId),
  );
  // Only the grants these users could hold, directly or through their groups and the groups'
  // ancestors, are loaded: an agent's rule-derived grants grow with the tenant.
  const userNames = await loadNames(knex, tenantId, users.values(), []);
  const agents = await loadAgents(
    knex,
    tenantId,
    pairs.map((p) => p.agentId),
    { userIds: [...users.keys()], groupIds: [...userNames.groups.keys()] },
  );
  const agentNames = await loadNames(knex, tenantId, [], agents.values());
  const names: Names = {
    groups: userNames.groups,
    idpGroups: new Map([...userNames.idpGroups, ...agentNames.idpGroups]),
    rules: new Map([...userNames.rules, ...agentNames.rules]),
  };
  const decisions = pairs.map((p) => {
    const agent = agents.get(p.agentId);
    return agent ? decide(users.get(p.userId), agent, at, names) : { ...NONE, reasons: ['the agent does not exist'] };
  });
  return { users, agents, decisions };
}
