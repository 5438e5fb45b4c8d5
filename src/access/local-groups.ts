import type { Knex } from 'knex';
import { eachChunk, inChunks, inListChunks, insertChunked } from '../db/batch.js';
import type { Area } from './catalogue.js';
import { canManageUsers, type Principal } from './principal.js';
import { currentRead, escapeLike } from '../db/dialect.js';
import { isUniqueViolation } from '../db/errors.js';
import { newId } from '../db/ids.js';
import { decodeCursor, keyset, pageFrom, type KeyColumn } from '../db/keyset.js';
import { toMs } from '../db/rows.js';
import { noRowChanged } from '../db/versioned.js';
import { Conflict, NotFound, Unprocessable } from '../errors.js';
import { liveDerivedSql } from '../mapping/live.js';
import { uniqueKey } from '../directory/model/value-key.js';

/**
 * The workspace's own groups (seed 004): a tree by `parentId`, members with a role. A user may
 * hold several rows in one group, one made by hand (empty provenance) and any number derived by
 * mapping rules; they are a member if any row says so, and a manager if any row says manager.
 */

export type GroupStatus = 'active' | 'archived';
export type MemberRole = 'member' | 'manager';

export interface LocalGroup {
  tenantId: string;
  id: string;
  name: string;
  description: string | null;
  status: GroupStatus;
  parentId: string | null;
  version: number;
  createdAt: number;
  updatedAt: number;
}

export interface GroupRef {
  id: string;
  name: string;
}

type Row = Record<string, unknown>;

function groupFromRow(r: Row): LocalGroup {
  return {
    tenantId: String(r.tenant_id),
    id: String(r.id),
    name: String(r.name),
    description: (r.description as string | null) ?? null,
    status: r.status as GroupStatus,
    parentId: (r.parent_id as string | null) || null,
    version: Number(r.version),
    createdAt: toMs(r.created_at)!,
    updatedAt: toMs(r.updated_at)!,
  };
}

/** Group names are unique per tenant regardless of case and Unicode form. */
export function groupNameKey(name: string): string {
  return name.normalize('NFC').trim().toLowerCase();
}

function nameTaken(name: string, cause: unknown): Conflict {
  return new Conflict('group_name_taken', `a group named "${name.trim()}" already exists`, {
    cause,
    fields: [{ path: 'body.name', message: 'is taken' }],
  });
}

function notFound(id: string): NotFound {
  return new NotFound('group_not_found', `no group with id "${id}"`);
}

export async function getLocalGroup(db: Knex, tenantId: string, id: string): Promise<LocalGroup | undefined> {
  const row = await db('local_groups').where({ tenant_id: tenantId, id }).first();
  return row ? groupFromRow(row) : undefined;
}

export async function requireLocalGroup(db: Knex, tenantId: string, id: string): Promise<LocalGroup> {
  const g = await getLocalGroup(db, tenantId, id);
  if (!g) throw notFound(id);
  return g;
}

/**
 * Groups by id as they are now committed: on MariaDB the read waits for a concurrent change or
 * deletion of those rows, so a reference is never taken to a group being deleted.
 */
export async function currentGroups(trx: Knex, tenantId: string, ids: string[]): Promise<Map<string, LocalGroup>> {
  const out = new Map<string, LocalGroup>();
  const unique = [...new Set(ids)];
  for (const r of await inChunks<string, Row>(trx, unique, (part) =>
    currentRead(trx('local_groups').where({ tenant_id: tenantId }).whereIn('id', part)),
  ))
    out.set(String(r.id), groupFromRow(r));
  return out;
}

export interface GroupListQuery {
  status?: GroupStatus;
  parentId?: string;
  topLevel?: boolean;
  /** Case-insensitive prefix of the name. */
  name?: string;
  limit: number;
  cursor?: string;
}

const BY_NAME: KeyColumn[] = [
  { sql: 'name_key', dir: 'asc' },
  { sql: 'id', dir: 'asc' },
];

/** One page of a tenant's groups by name, by keyset. */
export async function listLocalGroups(
  db: Knex,
  tenantId: string,
  q: GroupListQuery,
): Promise<{ groups: LocalGroup[]; nextCursor: string | null }> {
  const query = db('local_groups').where({ tenant_id: tenantId });
  if (q.status) query.andWhere('status', q.status);
  if (q.parentId !== undefined) query.andWhere('parent_id', q.parentId);
  if (q.topLevel === true) query.whereNull('parent_id');
  if (q.topLevel === false) query.whereNotNull('parent_id');
  if (q.name) query.andWhereRaw(`name_key LIKE ? ESCAPE '!'`, [`${escapeLike(groupNameKey(q.name))}%`]);
  const after = q.cursor ? decodeCursor(q.cursor, 2) : undefined;
  const rows = (await keyset(query, BY_NAME, after, q.limit)) as Row[];
  const page = pageFrom(rows, q.limit, (r) => [String(r.name_key), String(r.id)]);
  return { groups: page.rows.map(groupFromRow), nextCursor: page.nextCursor };
}

/** Distinct members per group, counting a user once whatever rows give them membership. */
export async function memberCounts(db: Knex, tenantId: string, groupIds: string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>(groupIds.map((id) => [id, 0]));
  const rows = await inChunks(db, groupIds, (part) =>
    db('group_members')
      .where({ tenant_id: tenantId })
      .whereIn('group_id', part)
      .whereRaw(liveDerivedSql('group_members'))
      .groupBy('group_id')
      .select('group_id')
      .countDistinct({ n: 'user_id' }),
  );
  for (const r of rows as Row[]) out.set(String(r.group_id), Number(r.n));
  return out;
}

export async function groupNames(db: Knex, tenantId: string, ids: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const unique = [...new Set(ids)];
  for (const r of await inChunks(db, unique, (part) =>
    db('local_groups').where({ tenant_id: tenantId }).whereIn('id', part).select('id', 'name'),
  ))
    out.set(String(r.id), String(r.name));
  return out;
}

export interface GroupInput {
  name: string;
  description?: string | null;
  parentId?: string | null;
}

export async function insertLocalGroup(
  trx: Knex,
  tenantId: string,
  input: GroupInput,
  now: number,
): Promise<LocalGroup> {
  const row = {
    tenant_id: tenantId,
    id: newId(),
    name: input.name.trim(),
    name_key: uniqueKey('name', input.name, 200, groupNameKey),
    description: input.description ?? null,
    status: 'active',
    parent_id: input.parentId ?? null,
    version: 1,
    created_at: now,
    updated_at: now,
  };
  try {
    await trx('local_groups').insert(row);
  } catch (err) {
    if (isUniqueViolation(err)) throw nameTaken(input.name, err);
    throw err;
  }
  return groupFromRow(row);
}

/** Takes a group for a change (version bump, so concurrent changes of one group queue up). */
export async function lockLocalGroup(trx: Knex, tenantId: string, id: string, now: number): Promise<LocalGroup> {
  const changed = await trx('local_groups')
    .where({ tenant_id: tenantId, id })
    .update({ version: trx.raw('version + 1'), updated_at: now });
  if (changed === 0)
    await noRowChanged(trx, 'local_groups', { tenant_id: tenantId, id }, undefined, notFound(id), 'group');
  return (await getLocalGroup(trx, tenantId, id))!;
}

export interface GroupChange {
  name?: string;
  description?: string | null;
  parentId?: string | null;
  status?: GroupStatus;
}

export async function writeLocalGroup(trx: Knex, locked: LocalGroup, change: GroupChange): Promise<LocalGroup> {
  const next: LocalGroup = {
    ...locked,
    ...(change.name !== undefined ? { name: change.name.trim() } : {}),
    ...(change.description !== undefined ? { description: change.description } : {}),
    ...(change.parentId !== undefined ? { parentId: change.parentId } : {}),
    ...(change.status !== undefined ? { status: change.status } : {}),
  };
  try {
    await trx('local_groups')
      .where({ tenant_id: locked.tenantId, id: locked.id })
      .update({
        name: next.name,
        name_key: uniqueKey('name', next.name, 200, groupNameKey),
        description: next.description,
        parent_id: next.parentId,
        status: next.status,
      });
  } catch (err) {
    if (isUniqueViolation(err)) throw nameTaken(next.name, err);
    throw err;
  }
  return next;
}

/**
 * Refuses a parent that would put the group inside its own subtree, naming the cycle. The walk
 * reads each ancestor as committed (waiting on MariaDB for a concurrent re-parenting), so two
 * requests cannot each close half of a loop.
 */
export async function assertNoCycle(trx: Knex, group: LocalGroup, parentId: string): Promise<void> {
  const chain: GroupRef[] = [];
  const seen = new Set<string>();
  for (let id: string | null = parentId; id !== null && !seen.has(id); ) {
    seen.add(id);
    if (id === group.id) {
      const cycle = [group.name, ...chain.map((g) => g.name), group.name];
      throw new Unprocessable(
        'group_cycle',
        `group "${group.name}" cannot be placed under "${chain[0]?.name ?? group.name}": that would make a cycle ${cycle.join(' → ')}`,
        {
          fields: [{ path: 'body.parentId', message: `would make a cycle: ${cycle.join(' → ')}` }],
          details: { cycle: [{ id: group.id, name: group.name }, ...chain, { id: group.id, name: group.name }] },
        },
      );
    }
    const row: Row | undefined = await currentRead(
      trx('local_groups').where({ tenant_id: group.tenantId, id }).select('id', 'name', 'parent_id'),
    ).first();
    if (!row) break;
    chain.push({ id: String(row.id), name: String(row.name) });
    id = (row.parent_id as string | null) || null;
  }
}

/** The direct children of a group, as committed now. */
export async function childGroups(trx: Knex, tenantId: string, id: string): Promise<GroupRef[]> {
  const rows = await currentRead(
    trx('local_groups').where({ tenant_id: tenantId, parent_id: id }).select('id', 'name').orderBy('name_key'),
  );
  return rows.map((r: Row) => ({ id: String(r.id), name: String(r.name) }));
}

/** Deletes a group and every membership row in it, manual and derived. */
export async function deleteLocalGroupRow(trx: Knex, tenantId: string, id: string): Promise<void> {
  await trx('group_members').where({ tenant_id: tenantId, group_id: id }).delete();
  await trx('local_groups').where({ tenant_id: tenantId, id }).delete();
}

// ---- membership ----

const MANUAL = { rule_id: '', idp_group_id: '' };

/** A user's role in a group counting every row (manual and derived), or null for a non-member. */
export async function effectiveRole(
  db: Knex,
  tenantId: string,
  groupId: string,
  userId: string,
): Promise<MemberRole | null> {
  const rows = await db('group_members')
    .where({ tenant_id: tenantId, group_id: groupId, user_id: userId })
    .whereRaw(liveDerivedSql('group_members'))
    .select('role');
  if (!rows.length) return null;
  return rows.some((r: Row) => r.role === 'manager') ? 'manager' : 'member';
}

/** Which of these users hold a manual row in the group, and whether they hold a derived one. */
export async function membershipsOf(
  db: Knex,
  tenantId: string,
  groupId: string,
  userIds: string[],
): Promise<
  Map<string, { manual: MemberRole | null; derived: { role: MemberRole; ruleId: string; idpGroupId: string }[] }>
> {
  const out = new Map<
    string,
    { manual: MemberRole | null; derived: { role: MemberRole; ruleId: string; idpGroupId: string }[] }
  >();
  const unique = [...new Set(userIds)];
  const rows = await inChunks(db, unique, (part) =>
    db('group_members')
      .where({ tenant_id: tenantId, group_id: groupId })
      .whereIn('user_id', part)
      .whereRaw(liveDerivedSql('group_members'))
      .select('user_id', 'role', 'rule_id', 'idp_group_id'),
  );
  for (const r of rows as Row[]) {
    const entry = out.get(String(r.user_id)) ?? { manual: null, derived: [] };
    if (r.rule_id === '' && r.idp_group_id === '') entry.manual = r.role as MemberRole;
    else
      entry.derived.push({ role: r.role as MemberRole, ruleId: String(r.rule_id), idpGroupId: String(r.idp_group_id) });
    out.set(String(r.user_id), entry);
  }
  return out;
}

/**
 * Writes manual membership rows: inserts the absent, re-roles the present. Cost follows the
 * number of users given, never the size of the group.
 */
export async function putManualMembers(
  trx: Knex,
  tenantId: string,
  groupId: string,
  fresh: string[],
  reroled: string[],
  role: MemberRole,
  now: number,
): Promise<void> {
  // A concurrent request may have added the same user since the caller read; the merge keeps
  // that from failing the whole change.
  await insertChunked(
    trx,
    'group_members',
    fresh.map((userId) => ({
      tenant_id: tenantId,
      group_id: groupId,
      user_id: userId,
      role,
      ...MANUAL,
      created_at: now,
    })),
    { conflict: (q) => q.onConflict(['tenant_id', 'group_id', 'user_id', 'rule_id', 'idp_group_id']).merge(['role']) },
  );
  await eachChunk(trx, reroled, (part) =>
    trx('group_members')
      .where({ tenant_id: tenantId, group_id: groupId, ...MANUAL })
      .whereIn('user_id', part)
      .update({ role }),
  );
}

/** Deletes manual rows only: what a mapping rule derived for the same user stays. */
export async function removeManualMembers(
  trx: Knex,
  tenantId: string,
  groupId: string,
  userIds: string[],
): Promise<void> {
  await eachChunk(trx, userIds, (part) =>
    trx('group_members')
      .where({ tenant_id: tenantId, group_id: groupId, ...MANUAL })
      .whereIn('user_id', part)
      .delete(),
  );
}

export interface GroupMember {
  userId: string;
  email: string | null;
  displayName: string | null;
  status: string;
  /** Manager if any row says manager. */
  role: MemberRole;
  /** `manual` when an admin added the user by hand (whatever rules add), else `rule`. */
  source: 'manual' | 'rule';
  rows: { source: 'manual' | 'rule'; role: MemberRole; ruleId: string | null; idpGroupId: string | null }[];
}

/** One page of a group's members, one entry per user, ordered by user id, by keyset. */
export async function listGroupMembers(
  db: Knex,
  tenantId: string,
  groupId: string,
  q: { limit: number; cursor?: string },
): Promise<{ members: GroupMember[]; nextCursor: string | null }> {
  const after = q.cursor ? String(decodeCursor(q.cursor, 1)[0]) : '';
  const ids = (
    await db('group_members')
      .where({ tenant_id: tenantId, group_id: groupId })
      .andWhere('user_id', '>', after)
      .whereRaw(liveDerivedSql('group_members'))
      .distinct('user_id')
      .orderBy('user_id')
      .limit(q.limit + 1)
  ).map((r: Row) => String(r.user_id));
  const page = pageFrom(ids, q.limit, (id) => [id]);
  if (!page.rows.length) return { members: [], nextCursor: null };
  const rows = (await db('group_members as m')
    .join('users as u', function () {
      this.on('u.tenant_id', 'm.tenant_id').andOn('u.id', 'm.user_id');
    })
    .where({ 'm.tenant_id': tenantId, 'm.group_id': groupId })
    .whereIn('m.user_id', page.rows)
    .whereRaw(liveDerivedSql('m'))
    .orderBy(['m.user_id', 'm.rule_id', 'm.idp_group_id'])
    .select('m.user_id', 'm.role', 'm.rule_id', 'm.idp_group_id', 'u.email', 'u.display_name', 'u.status')) as Row[];
  const byUser = new Map<string, GroupMember>();
  for (const r of rows) {
    const id = String(r.user_id);
    const source = r.rule_id === '' && r.idp_group_id === '' ? 'manual' : 'rule';
    const m = byUser.get(id) ?? {
      userId: id,
      email: (r.email as string | null) ?? null,
      displayName: (r.display_name as string | null) ?? null,
      status: String(r.status),
      role: 'member' as MemberRole,
      source: 'rule' as const,
      rows: [],
    };
    if (r.role === 'manager') m.role = 'manager';
    if (source === 'manual') m.source = 'manual';
    m.rows.push({
      source,
      role: r.role as MemberRole,
      ruleId: source === 'rule' ? String(r.rule_id) : null,
      idpGroupId: source === 'rule' ? String(r.idp_group_id) : null,
    });
    byUser.set(id, m);
  }
  return { members: page.rows.flatMap((id) => byUser.get(id) ?? []), nextCursor: page.nextCursor };
}

// ---- who may act on a group ----

/**
 * What the principal may do with a group's membership: everything (admins and user managers),
 * the limited powers of one of the group's own managers, or nothing. An archived group confers
 * nothing, so its managers' powers rest with it.
 */
export async function membershipAuthority(
  db: Knex,
  catalogue: Area[],
  p: Principal,
  group: LocalGroup,
): Promise<'full' | 'group_manager' | null> {
  if (canManageUsers(p, catalogue)) return 'full';
  if (p.kind !== 'user' || group.status !== 'active') return null;
  return (await effectiveRole(db, group.tenantId, group.id, p.user.id)) === 'manager' ? 'group_manager' : null;
}

// ---- what a group carries ----

/**
 * A group and its ancestors, nearest first, as committed now (on MariaDB the walk waits for a
 * concurrent move), so a decision on what the chain carries sees the tree it will change.
 */
export async function groupChain(trx: Knex, tenantId: string, id: string): Promise<string[]> {
  const chain: string[] = [];
  for (let at: string | null = id; at !== null && !chain.includes(at); ) {
    const row: Row | undefined = await currentRead(
      trx('local_groups').where({ tenant_id: tenantId, id: at }).select('id', 'parent_id'),
    ).first();
    if (!row) break;
    chain.push(at);
    at = (row.parent_id as string | null) || null;
  }
  return chain;
}

/** One agent right a group holds: a grant to it, or a data source restricted to it. */
export interface CarriedRight {
  /** The grant's or the data source's id. */
  id: string;
  kind: 'grant' | 'data_source';
  agentId: string;
  groupId: string;
}

/**
 * The agent grants and data-source restrictions held by these groups, whatever their state or
 * window: an archived group or a dated grant comes into force later without anyone asking.
 */
export async function rightsCarried(trx: Knex, tenantId: string, groupIds: string[]): Promise<CarriedRight[]> {
  const out: CarriedRight[] = [];
  const unique = [...new Set(groupIds)];
  for (const chunk of inListChunks(trx, unique)) {
    const grants = await currentRead(
      trx('agent_grants')
        .where({ tenant_id: tenantId, subject_type: 'group' })
        .whereIn('subject_id', chunk)
        .select('id', 'agent_id', 'subject_id'),
    );
    for (const g of grants as Row[])
      out.push({ id: String(g.id), kind: 'grant', agentId: String(g.agent_id), groupId: String(g.subject_id) });
    const sources = await currentRead(
      trx('data_source_groups as l')
        .join('agent_data_sources as s', function () {
          this.on('s.tenant_id', 'l.tenant_id').andOn('s.id', 'l.data_source_id');
        })
        .where({ 'l.tenant_id': tenantId })
        .whereIn('l.group_id', chunk)
        .select('s.id', 's.agent_id', 'l.group_id'),
    );
    for (const s of sources as Row[])
      out.push({ id: String(s.id), kind: 'data_source', agentId: String(s.agent_id), groupId: String(s.group_id) });
  }
  return out;
}
