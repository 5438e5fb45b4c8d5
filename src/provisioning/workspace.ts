import type { Knex } from 'knex';
import { agentNames, deleteAgentRow, insertAgent, lockAgent, writeAgent, type Agent, type AgentChange, type AgentInput } from '../access/agents.js';
import type { Area } from '../access/catalogue.js';
import {
  deleteDataSourceRow,
  insertDataSource,
  removeGroupFromDataSources,
  requireDataSource,
  writeDataSource,
  type DataSource,
  type DataSourceAccess,
} from '../access/data-sources.js';
import {
  checkWindow,
  deleteGrantRow,
  findManualGrant,
  insertManualGrant,
  isManual,
  removeGroupGrants,
  requireGrant,
  subjectNames,
  writeGrant,
  type Grant,
  type Permission,
} from '../access/grants.js';
import {
  assertNoCycle,
  childGroups,
  currentGroups,
  deleteLocalGroupRow,
  groupNames,
  insertLocalGroup,
  lockLocalGroup,
  memberCounts,
  membershipAuthority,
  membershipsOf,
  putManualMembers,
  removeManualMembers,
  writeLocalGroup,
  type GroupChange,
  type GroupInput,
  type LocalGroup,
  type MemberRole,
} from '../access/local-groups.js';
import { assertMayGrantMembership, assertMayShapeGroup } from '../access/policies.js';
import { isAdmin, requireAdmin, requireUserManager, type Principal } from '../access/principal.js';
import { recordEvents, type AuditInput } from '../audit/record.js';
import type { Ctx } from '../context.js';
import { inChunks } from '../db/batch.js';
import { currentRead } from '../db/dialect.js';
import type { Db } from '../db/knex.js';
import { Conflict, Forbidden, InvalidInput, NotFound, Unprocessable, type FieldError } from '../errors.js';
import { caseMappedKey } from '../directory/model/value-key.js';
import { getTenant } from '../tenants/store.js';

/**
 * Commands on local groups, agents, grants and data sources (seed 004). Each runs in one
 * transaction: lock (version bump), authorize, mutate, record the audit events, answer.
 */

/** Most users one membership request may name (ids and emails together). */
export const MAX_MEMBERS_PER_REQUEST = 1000;

const groupEntity = (g: LocalGroup) => ({ type: 'group', id: g.id, name: g.name });
const agentEntity = (a: { id: string; name: string }) => ({ type: 'agent', id: a.id, name: a.name });
const groupFields = (g: LocalGroup) => ({ name: g.name, description: g.description, parentId: g.parentId, status: g.status });
const quoted = (xs: string[]) => xs.map((x) => `"${x}"`).join(', ');

function checkedName(name: string, path: string): string {
  if (!name.trim()) throw new InvalidInput('invalid_name', 'a name must not be blank', { fields: [{ path, message: 'must not be blank' }] });
  return name.trim();
}

/** Groups a body refers to: each must exist and be active (an archived group confers nothing). */
async function activeGroups(trx: Knex, tenantId: string, ids: string[], path: string): Promise<Map<string, LocalGroup>> {
  const found = await currentGroups(trx, tenantId, ids);
  const unknown = ids.filter((id) => !found.has(id));
  if (unknown.length) {
    throw new Unprocessable('unknown_group', `no group with id ${quoted(unknown)}`, {
      fields: [{ path, message: `names no group of this tenant: ${unknown.join(', ')}` }],
      details: { unknownGroupIds: unknown },
    });
  }
  const archived = ids.filter((id) => found.get(id)!.status === 'archived');
  if (archived.length) {
    throw new Unprocessable('group_archived', `group ${quoted(archived.map((id) => found.get(id)!.name))} is archived; an archived group's grants and data-source rights do not apply`, {
      fields: [{ path, message: `names an archived group: ${archived.join(', ')}` }],
      details: { archivedGroupIds: archived },
    });
  }
  return found;
}

async function existingParent(trx: Knex, tenantId: string, parentId: string): Promise<void> {
  if (!(await currentGroups(trx, tenantId, [parentId])).size) {
    throw new Unprocessable('unknown_group', `no group with id "${parentId}" to be the parent`, { fields: [{ path: 'body.parentId', message: 'names no group of this tenant' }] });
  }
}

// ---- groups ----

export async function createGroup(db: Db, catalogue: Area[], ctx: Ctx, p: Principal, input: GroupInput): Promise<LocalGroup> {
  requireUserManager(p, catalogue, 'create groups');
  const name = checkedName(input.name, 'body.name');
  return db.tx(async (trx) => {
    if (input.parentId) await existingParent(trx, ctx.tenantId, input.parentId);
    await assertMayShapeGroup(trx, p, ctx.tenantId, null, { parentId: input.parentId ?? null });
    const g = await insertLocalGroup(trx, ctx.tenantId, { ...input, name }, ctx.now.getTime());
    await recordEvents(trx, ctx, [{ event: 'group.created', entity: groupEntity(g), before: null, after: groupFields(g) }]);
    return g;
  });
}

/** Renames, re-describes, moves (refusing cycles) or archives a group. */
export async function updateGroup(db: Db, catalogue: Area[], ctx: Ctx, p: Principal, id: string, change: GroupChange): Promise<LocalGroup> {
  requireUserManager(p, catalogue, 'change groups');
  if (change.name !== undefined) checkedName(change.name, 'body.name');
  return db.tx(async (trx) => {
    const locked = await lockLocalGroup(trx, ctx.tenantId, id, ctx.now.getTime());
    if (change.parentId && change.parentId !== locked.parentId) {
      await existingParent(trx, ctx.tenantId, change.parentId);
      await assertNoCycle(trx, locked, change.parentId);
    }
    await assertMayShapeGroup(trx, p, ctx.tenantId, locked, change);
    const next = await writeLocalGroup(trx, locked, change);
    const was = groupFields(locked);
    const is = groupFields(next);
    const changed = (Object.keys(is) as (keyof typeof is)[]).filter((k) => was[k] !== is[k]);
    if (changed.length) {
      const pick = (f: typeof is) => Object.fromEntries(changed.map((k) => [k, f[k]]));
      await recordEvents(trx, ctx, [{ event: 'group.updated', entity: groupEntity(next), before: pick(was), after: pick(is) }]);
    }
    return next;
  });
}

/**
 * Deletes a group with its memberships, its grants and its place in data-source restrictions.
 * A group with child groups is refused (409, listing them): deleting it would silently move
 * their members out from under the grants they inherit.
 */
export async function deleteGroup(db: Db, catalogue: Area[], ctx: Ctx, p: Principal, id: string): Promise<void> {
  requireUserManager(p, catalogue, 'delete groups');
  await db.tx(async (trx) => {
    const locked = await lockLocalGroup(trx, ctx.tenantId, id, ctx.now.getTime());
    const children = await childGroups(trx, ctx.tenantId, id);
    if (children.length) {
      throw new Conflict('group_has_children', `group "${locked.name}" has child groups ${quoted(children.map((c) => c.name))}; move or delete them first`, { details: { children } });
    }
    const memberCount = (await memberCounts(trx, ctx.tenantId, [id])).get(id) ?? 0;
    const grants = await removeGroupGrants(trx, ctx.tenantId, id);
    const sources = await removeGroupFromDataSources(trx, ctx.tenantId, id);
    const agents = await agentNames(trx, ctx.tenantId, [...grants.map((g) => g.agentId), ...sources.map((s) => s.agentId)]);
    const names = await groupNames(trx, ctx.tenantId, sources.flatMap((s) => s.groupIds));
    await deleteLocalGroupRow(trx, ctx.tenantId, id);
    const events: AuditInput[] = [{ event: 'group.deleted', entity: groupEntity(locked), before: { ...groupFields(locked), memberCount }, after: null }];
    for (const g of grants) {
      const agent = { id: g.agentId, name: agents.get(g.agentId) ?? g.agentId };
      events.push({ event: 'agent.grant_removed', entity: agentEntity(agent), before: grantAudit(g, agent.name, locked.name), after: null });
    }
    for (const s of sources) {
      events.push({
        event: 'agent.data_sources_changed',
        entity: agentEntity({ id: s.agentId, name: agents.get(s.agentId) ?? s.agentId }),
        before: { dataSource: sourceAudit(s, names) },
        after: { dataSource: sourceAudit({ ...s, groupIds: s.groupIds.filter((g) => g !== id) }, names) },
      });
    }
    await recordEvents(trx, ctx, events);
  });
}

// ---- members ----

export interface MemberSelection {
  userIds?: string[];
  emails?: string[];
}

export interface Person {
  id: string;
  email: string | null;
}

/**
 * The users a request names, by id or email (case-insensitive), each once. Any name that is
 * not a user of the tenant fails the whole request, every one listed.
 */
async function resolvePeople(trx: Knex, tenantId: string, sel: MemberSelection): Promise<Person[]> {
  const ids = sel.userIds ?? [];
  const emails = sel.emails ?? [];
  if (!ids.length && !emails.length) {
    throw new InvalidInput('no_users', 'name at least one user in userIds or emails', { fields: [{ path: 'body.userIds', message: 'userIds or emails must name at least one user' }] });
  }
  if (ids.length + emails.length > MAX_MEMBERS_PER_REQUEST) {
    throw new InvalidInput('too_many_users', `at most ${MAX_MEMBERS_PER_REQUEST} users per request (ids and emails together)`, {
      fields: [{ path: 'body.userIds', message: `userIds and emails together must name at most ${MAX_MEMBERS_PER_REQUEST} users` }],
    });
  }
  const byId = new Map<string, Person>();
  const uniqueIds = [...new Set(ids)];
  for (const r of await inChunks(trx, uniqueIds, (part) => trx('users').where({ tenant_id: tenantId }).whereIn('id', part).select('id', 'email'))) {
    byId.set(String(r.id), { id: String(r.id), email: (r.email as string | null) ?? null });
  }
  const key = (e: string) => caseMappedKey(e).slice(0, 320);
  const byEmail = new Map<string, Person>();
  const keys = [...new Set(emails.map(key))];
  for (const r of await inChunks(trx, keys, (part) => trx('users').where({ tenant_id: tenantId }).whereIn('email_key', part).select('id', 'email', 'email_key'))) {
    byEmail.set(String(r.email_key), { id: String(r.id), email: (r.email as string | null) ?? null });
  }
  const fields: FieldError[] = [];
  ids.forEach((id, i) => byId.has(id) || fields.push({ path: `body.userIds.${i}`, message: `"${id}" is not a user of this tenant` }));
  emails.forEach((e, i) => byEmail.has(key(e)) || fields.push({ path: `body.emails.${i}`, message: `"${e}" is not the email of a user of this tenant` }));
  if (fields.length) {
    const unknownUserIds = [...new Set(ids.filter((id) => !byId.has(id)))];
    const unknownEmails = [...new Set(emails.filter((e) => !byEmail.has(key(e))))];
    throw new InvalidInput('unknown_users', `no user with ${[unknownUserIds.length ? `id ${quoted(unknownUserIds)}` : '', unknownEmails.length ? `email ${quoted(unknownEmails)}` : ''].filter(Boolean).join(' or ')}; nothing was changed`, {
      fields,
      details: { unknownUserIds, unknownEmails },
    });
  }
  // In the order the request named them, so answers list people as they were asked for.
  const people = new Map<string, Person>();
  for (const id of ids) people.set(id, byId.get(id)!);
  for (const e of emails) {
    const p = byEmail.get(key(e))!;
    if (!people.has(p.id)) people.set(p.id, p);
  }
  return [...people.values()];
}

async function membershipGroup(trx: Knex, catalogue: Area[], ctx: Ctx, p: Principal, groupId: string) {
  const group = await lockLocalGroup(trx, ctx.tenantId, groupId, ctx.now.getTime());
  const authority = await membershipAuthority(trx, catalogue, p, group);
  if (!authority) throw new Forbidden('not_allowed', `only admins, user managers and managers of group "${group.name}" may change its members`);
  return { group, authority };
}

function managerLimit(message: string): Forbidden {
  return new Forbidden('group_manager_limit', `${message}: a group's managers add and remove members; roles are for admins and user managers`);
}

export interface MembersAdded {
  added: (Person & { role: MemberRole })[];
  updated: (Person & { role: MemberRole; previousRole: MemberRole })[];
  unchanged: (Person & { role: MemberRole })[];
}

/**
 * Adds users to a group by hand, or changes the role of their manual membership. Without
 * `role`, new members join as members and existing ones keep their role. A group manager may
 * add members only: never make anyone a manager, nor change a manager's role.
 */
export async function addGroupMembers(db: Db, catalogue: Area[], ctx: Ctx, p: Principal, groupId: string, sel: MemberSelection & { role?: MemberRole }): Promise<MembersAdded> {
  return db.tx(async (trx) => {
    const { group, authority } = await membershipGroup(trx, catalogue, ctx, p, groupId);
    const people = await resolvePeople(trx, ctx.tenantId, sel);
    const current = await membershipsOf(trx, ctx.tenantId, groupId, people.map((x) => x.id));
    const role = sel.role ?? 'member';
    const out: MembersAdded = { added: [], updated: [], unchanged: [] };
    for (const person of people) {
      const had = current.get(person.id)?.manual ?? null;
      if (had === null) out.added.push({ ...person, role });
      else if (sel.role !== undefined && sel.role !== had) out.updated.push({ ...person, role, previousRole: had });
      else out.unchanged.push({ ...person, role: had });
    }
    await assertMayGrantMembership(trx, catalogue, p, group, { members: out.added.length > 0, managers: role === 'manager' && out.added.length + out.updated.length > 0 });
    if (authority === 'group_manager' && out.updated.length) throw managerLimit(`you cannot change the role of manager ${quoted(out.updated.map((u) => u.email ?? u.id))}`);
    await putManualMembers(
      trx,
      ctx.tenantId,
      groupId,
      out.added.map((x) => x.id),
      out.updated.map((x) => x.id),
      role,
      ctx.now.getTime(),
    );
    await recordEvents(trx, ctx, [
      ...out.added.map((x) => ({ event: 'group.member_added', entity: groupEntity(group), before: null, after: { userId: x.id, email: x.email, role: x.role } })),
      ...out.updated.map((x) => ({
        event: 'group.member_role_changed',
        entity: groupEntity(group),
        before: { userId: x.id, email: x.email, role: x.previousRole },
        after: { userId: x.id, email: x.email, role: x.role },
      })),
    ]);
    return out;
  });
}

export interface MembersRemoved {
  /** `remainingRole` is what mapping rules still give the user in the group, if anything. */
  removed: (Person & { role: MemberRole; remainingRole: MemberRole | null })[];
  notRemoved: (Person & { reason: 'not_a_member' | 'rule_membership' })[];
}

async function removePeople(trx: Knex, ctx: Ctx, group: LocalGroup, authority: 'full' | 'group_manager', people: Person[]): Promise<MembersRemoved> {
  const current = await membershipsOf(trx, ctx.tenantId, group.id, people.map((x) => x.id));
  const out: MembersRemoved = { removed: [], notRemoved: [] };
  for (const person of people) {
    const m = current.get(person.id);
    if (!m) out.notRemoved.push({ ...person, reason: 'not_a_member' });
    else if (m.manual === null) out.notRemoved.push({ ...person, reason: 'rule_membership' });
    else {
      const remainingRole = m.derived.length ? (m.derived.some((d) => d.role === 'manager') ? 'manager' : 'member') : null;
      out.removed.push({ ...person, role: m.manual, remainingRole });
    }
  }
  const managers = out.removed.filter((x) => x.role === 'manager');
  if (authority === 'group_manager' && managers.length) throw managerLimit(`you cannot remove manager ${quoted(managers.map((x) => x.email ?? x.id))}`);
  await removeManualMembers(
    trx,
    ctx.tenantId,
    group.id,
    out.removed.map((x) => x.id),
  );
  await recordEvents(
    trx,
    ctx,
    out.removed.map((x) => ({
      event: 'group.member_removed',
      entity: groupEntity(group),
      before: { userId: x.id, email: x.email, role: x.role },
      after: { userId: x.id, email: x.email, role: x.remainingRole },
    })),
  );
  return out;
}

/** Removes users' manual memberships; what mapping rules give them stays (and is reported). */
export async function removeGroupMembers(db: Db, catalogue: Area[], ctx: Ctx, p: Principal, groupId: string, sel: MemberSelection): Promise<MembersRemoved> {
  return db.tx(async (trx) => {
    const { group, authority } = await membershipGroup(trx, catalogue, ctx, p, groupId);
    return removePeople(trx, ctx, group, authority, await resolvePeople(trx, ctx.tenantId, sel));
  });
}

/** Removes one user's manual membership; 404 when there is none, 409 when only rules give it. */
export async function removeGroupMember(db: Db, catalogue: Area[], ctx: Ctx, p: Principal, groupId: string, userId: string): Promise<void> {
  await db.tx(async (trx) => {
    const { group, authority } = await membershipGroup(trx, catalogue, ctx, p, groupId);
    const row = await trx('users').where({ tenant_id: ctx.tenantId, id: userId }).select('id', 'email').first();
    if (!row) throw new NotFound('user_not_found', `no user with id "${userId}"`);
    const out = await removePeople(trx, ctx, group, authority, [{ id: userId, email: (row.email as string | null) ?? null }]);
    const refused = out.notRemoved[0];
    if (refused?.reason === 'not_a_member') throw new NotFound('not_a_member', `${refused.email ?? userId} is not a member of group "${group.name}"`);
    if (refused) {
      throw new Conflict('rule_membership', `${refused.email ?? userId} is a member of group "${group.name}" through mapping rules only; change the rule or the IdP group instead`);
    }
  });
}

// ---- agents ----

const agentFields = (a: Agent) => ({ name: a.name, description: a.description, accessType: a.accessType, createdBy: a.createdBy });

/** Registers an agent, optionally on behalf of a user who becomes its creator. Admins only. */
export async function createAgent(db: Db, ctx: Ctx, p: Principal, input: AgentInput): Promise<Agent> {
  requireAdmin(p, 'register agents');
  const name = checkedName(input.name, 'body.name');
  return db.tx(async (trx) => {
    if (input.createdBy && !(await trx('users').where({ tenant_id: ctx.tenantId, id: input.createdBy }).first())) {
      throw new Unprocessable('unknown_user', `no user with id "${input.createdBy}" to be the creator`, { fields: [{ path: 'body.createdBy', message: 'names no user of this tenant' }] });
    }
    const a = await insertAgent(trx, ctx.tenantId, { ...input, name }, ctx.now.getTime());
    await recordEvents(trx, ctx, [{ event: 'agent.created', entity: agentEntity(a), before: null, after: agentFields(a) }]);
    return a;
  });
}

/**
 * Changes an agent. Admins change anything; the agent's creator may change its name and
 * description; the access type is for admins only.
 */
export async function updateAgent(db: Db, ctx: Ctx, p: Principal, id: string, change: AgentChange): Promise<Agent> {
  if (change.name !== undefined) checkedName(change.name, 'body.name');
  return db.tx(async (trx) => {
    const locked = await lockAgent(trx, ctx.tenantId, id, ctx.now.getTime());
    if (!isAdmin(p)) {
      if (p.kind !== 'user' || locked.createdBy !== p.user.id) throw new Forbidden('not_allowed', `only admins and its creator may change agent "${locked.name}"`);
      if (change.accessType !== undefined && change.accessType !== locked.accessType) requireAdmin(p, "change an agent's access type");
    }
    const next = await writeAgent(trx, locked, change);
    const events: AuditInput[] = [];
    if (next.name !== locked.name || next.description !== locked.description) {
      const diff = (a: Agent) => ({ ...(next.name !== locked.name ? { name: a.name } : {}), ...(next.description !== locked.description ? { description: a.description } : {}) });
      events.push({ event: 'agent.updated', entity: agentEntity(next), before: diff(locked), after: diff(next) });
    }
    if (next.accessType !== locked.accessType) {
      events.push({ event: 'agent.access_type_changed', entity: agentEntity(next), before: { accessType: locked.accessType }, after: { accessType: next.accessType } });
    }
    await recordEvents(trx, ctx, events);
    return next;
  });
}

export async function deleteAgent(db: Db, ctx: Ctx, p: Principal, id: string): Promise<void> {
  requireAdmin(p, 'delete agents');
  await db.tx(async (trx) => {
    const locked = await lockAgent(trx, ctx.tenantId, id, ctx.now.getTime());
    const removed = await deleteAgentRow(trx, ctx.tenantId, id);
    await recordEvents(trx, ctx, [
      { event: 'agent.deleted', entity: agentEntity(locked), before: { ...agentFields(locked), grantCount: removed.grants, dataSourceCount: removed.dataSources }, after: null },
    ]);
  });
}

// ---- grants ----

/** A grant as seed 004's log entry shows it: the agent and the subject by id and by name. */
function grantAudit(g: Grant, agentName: string, subjectName: string | null) {
  return {
    grantId: g.id,
    agentId: g.agentId,
    agentName,
    ...(g.subjectType === 'group' ? { groupId: g.subjectId, groupName: subjectName } : { userId: g.subjectId, email: subjectName }),
    permission: g.permission,
    startDate: g.startDate,
    endDate: g.endDate,
    timeZone: g.timeZone,
    ...(isManual(g) ? {} : { ruleId: g.ruleId, idpGroupId: g.idpGroupId }),
  };
}

async function subjectName(trx: Knex, tenantId: string, g: Grant): Promise<string | null> {
  return (await subjectNames(trx, tenantId, [g])).get(g.id) ?? null;
}

export interface GrantInput {
  groupId?: string;
  userId?: string;
  permission: Permission;
  startDate?: string | null;
  endDate?: string | null;
  timeZone?: string;
}

function manualOnly(g: Grant): void {
  if (!isManual(g)) {
    throw new Conflict('rule_grant', `grant "${g.id}" comes from mapping rule "${g.ruleId}"; change the rule or the IdP group instead`, { details: { ruleId: g.ruleId, idpGroupId: g.idpGroupId } });
  }
}

/**
 * Grants an agent to a group or a user, optionally between two local dates; the time zone
 * defaults to the tenant's and is stored resolved, so a later change of the tenant's zone
 * moves no existing window.
 */
export async function createGrant(db: Db, ctx: Ctx, p: Principal, agentId: string, input: GrantInput): Promise<Grant> {
  requireAdmin(p, "manage an agent's permissions");
  if ((input.groupId === undefined) === (input.userId === undefined)) {
    const message = input.groupId === undefined ? 'groupId or userId is required' : 'give groupId or userId, not both';
    throw new InvalidInput('invalid_subject', message, { fields: [{ path: 'body.groupId', message }] });
  }
  return db.tx(async (trx) => {
    const agent = await lockAgent(trx, ctx.tenantId, agentId, ctx.now.getTime());
    const window = checkWindow({
      startDate: input.startDate ?? null,
      endDate: input.endDate ?? null,
      timeZone: input.timeZone ?? (await getTenant(trx, ctx.tenantId)).timeZone,
    });
    if (agent.accessType === 'private') {
      throw new Unprocessable('private_agent', `agent "${agent.name}" is private (its creator and admins only) and takes no grants; change its access type first`);
    }
    let name: string | null;
    if (input.groupId !== undefined) {
      name = (await activeGroups(trx, ctx.tenantId, [input.groupId], 'body.groupId')).get(input.groupId)!.name;
    } else {
      const user = await currentRead(trx('users').where({ tenant_id: ctx.tenantId, id: input.userId }).select('email')).first();
      if (!user) throw new Unprocessable('unknown_user', `no user with id "${input.userId}"`, { fields: [{ path: 'body.userId', message: 'names no user of this tenant' }] });
      name = (user.email as string | null) ?? null;
    }
    const wanted = {
      agentId,
      subjectType: input.groupId !== undefined ? ('group' as const) : ('user' as const),
      subjectId: (input.groupId ?? input.userId)!,
      permission: input.permission,
      ...window,
    };
    const same = await findManualGrant(trx, ctx.tenantId, wanted);
    if (same) throw new Conflict('grant_exists', `agent "${agent.name}" already has this grant (${same.id})`, { details: { grantId: same.id } });
    const g = await insertManualGrant(trx, ctx.tenantId, wanted, ctx.now.getTime());
    await recordEvents(trx, ctx, [{ event: 'agent.grant_created', entity: agentEntity(agent), before: null, after: grantAudit(g, agent.name, name) }]);
    return g;
  });
}

export interface GrantChange {
  permission?: Permission;
  startDate?: string | null;
  endDate?: string | null;
  timeZone?: string;
}

/** Changes a manual grant's level or window; a rule's grant is the rule's to change (409). */
export async function updateGrant(db: Db, ctx: Ctx, p: Principal, agentId: string, grantId: string, change: GrantChange): Promise<Grant> {
  requireAdmin(p, "manage an agent's permissions");
  return db.tx(async (trx) => {
    const agent = await lockAgent(trx, ctx.tenantId, agentId, ctx.now.getTime());
    const g = await requireGrant(trx, ctx.tenantId, agentId, grantId);
    manualOnly(g);
    const window = checkWindow({
      startDate: change.startDate !== undefined ? change.startDate : g.startDate,
      endDate: change.endDate !== undefined ? change.endDate : g.endDate,
      timeZone: change.timeZone ?? g.timeZone,
    });
    const next = await writeGrant(trx, g, { permission: change.permission ?? g.permission, ...window });
    const name = await subjectName(trx, ctx.tenantId, g);
    if (JSON.stringify(grantAudit(g, agent.name, name)) !== JSON.stringify(grantAudit(next, agent.name, name))) {
      await recordEvents(trx, ctx, [{ event: 'agent.grant_changed', entity: agentEntity(agent), before: grantAudit(g, agent.name, name), after: grantAudit(next, agent.name, name) }]);
    }
    return next;
  });
}

export async function deleteGrant(db: Db, ctx: Ctx, p: Principal, agentId: string, grantId: string): Promise<void> {
  requireAdmin(p, "manage an agent's permissions");
  await db.tx(async (trx) => {
    const agent = await lockAgent(trx, ctx.tenantId, agentId, ctx.now.getTime());
    const g = await requireGrant(trx, ctx.tenantId, agentId, grantId);
    manualOnly(g);
    await deleteGrantRow(trx, ctx.tenantId, grantId);
    await recordEvents(trx, ctx, [{ event: 'agent.grant_removed', entity: agentEntity(agent), before: grantAudit(g, agent.name, await subjectName(trx, ctx.tenantId, g)), after: null }]);
  });
}

// ---- data sources ----

function sourceAudit(s: DataSource, names: Map<string, string>) {
  return { id: s.id, name: s.name, access: s.access, groups: s.groupIds.map((id) => ({ id, name: names.get(id) ?? null })) };
}

export interface DataSourceBody {
  name?: string;
  access?: DataSourceAccess;
  groupIds?: string[];
}

/** groupIds are required with access `groups` and refused with `all_agent_users`. */
function checkRestriction(access: DataSourceAccess, groupIds: string[]): void {
  if (access === 'groups' && !groupIds.length) {
    throw new InvalidInput('groups_required', 'a data source restricted to groups needs at least one group', { fields: [{ path: 'body.groupIds', message: 'is required when access is groups' }] });
  }
  if (access === 'all_agent_users' && groupIds.length) {
    throw new InvalidInput('groups_not_allowed', 'a data source open to all agent users names no groups', { fields: [{ path: 'body.groupIds', message: 'is allowed only when access is groups' }] });
  }
}

export async function createDataSource(db: Db, ctx: Ctx, p: Principal, agentId: string, body: Required<Pick<DataSourceBody, 'name' | 'access'>> & DataSourceBody): Promise<DataSource> {
  requireAdmin(p, "manage an agent's data sources");
  const name = checkedName(body.name, 'body.name');
  const groupIds = [...new Set(body.groupIds ?? [])];
  checkRestriction(body.access, groupIds);
  return db.tx(async (trx) => {
    const agent = await lockAgent(trx, ctx.tenantId, agentId, ctx.now.getTime());
    const groups = await activeGroups(trx, ctx.tenantId, groupIds, 'body.groupIds');
    const ds = await insertDataSource(trx, ctx.tenantId, agentId, { name, access: body.access, groupIds }, ctx.now.getTime());
    const names = new Map([...groups].map(([id, g]) => [id, g.name]));
    await recordEvents(trx, ctx, [{ event: 'agent.data_sources_changed', entity: agentEntity(agent), before: null, after: { dataSource: sourceAudit(ds, names) } }]);
    return ds;
  });
}

/** Changes a source's name or restriction; groups newly named must exist and be active. */
export async function updateDataSource(db: Db, ctx: Ctx, p: Principal, agentId: string, id: string, body: DataSourceBody): Promise<DataSource> {
  requireAdmin(p, "manage an agent's data sources");
  if (body.name !== undefined) checkedName(body.name, 'body.name');
  return db.tx(async (trx) => {
    const agent = await lockAgent(trx, ctx.tenantId, agentId, ctx.now.getTime());
    const ds = await requireDataSource(trx, ctx.tenantId, agentId, id);
    const access = body.access ?? ds.access;
    const groupIds = body.groupIds ? [...new Set(body.groupIds)] : access === 'groups' ? ds.groupIds : [];
    checkRestriction(access, groupIds);
    const had = new Set(ds.groupIds);
    await activeGroups(
      trx,
      ctx.tenantId,
      groupIds.filter((g) => !had.has(g)),
      'body.groupIds',
    );
    const next = await writeDataSource(trx, ds, { name: body.name ?? ds.name, access, groupIds });
    const names = await groupNames(trx, ctx.tenantId, [...ds.groupIds, ...next.groupIds]);
    const before = sourceAudit(ds, names);
    const after = sourceAudit(next, names);
    if (JSON.stringify(before) !== JSON.stringify(after)) {
      await recordEvents(trx, ctx, [{ event: 'agent.data_sources_changed', entity: agentEntity(agent), before: { dataSource: before }, after: { dataSource: after } }]);
    }
    return next;
  });
}

export async function deleteDataSource(db: Db, ctx: Ctx, p: Principal, agentId: string, id: string): Promise<void> {
  requireAdmin(p, "manage an agent's data sources");
  await db.tx(async (trx) => {
    const agent = await lockAgent(trx, ctx.tenantId, agentId, ctx.now.getTime());
    const ds = await requireDataSource(trx, ctx.tenantId, agentId, id);
    const names = await groupNames(trx, ctx.tenantId, ds.groupIds);
    await deleteDataSourceRow(trx, ctx.tenantId, id);
    await recordEvents(trx, ctx, [{ event: 'agent.data_sources_changed', entity: agentEntity(agent), before: { dataSource: sourceAudit(ds, names) }, after: null }]);
  });
}
