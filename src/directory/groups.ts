import type { Knex } from 'knex';
import { currentRead } from '../db/dialect.js';
import { Conflict, InvalidInput, NotFound } from '../errors.js';
import { eachChunk, inChunks, inListChunks, insertChunked } from '../db/batch.js';
import { newId } from '../db/ids.js';
import { isUniqueViolation } from '../db/errors.js';
import { noRowChanged, whereVersion, type VersionCondition } from '../db/versioned.js';
import { parseJson, toMs } from '../db/rows.js';
import type { ScimDoc } from './model/normalize.js';
import { SCIM_LIMITS } from './model/limits.js';
import { uniqueKey } from './model/value-key.js';

export type GroupSource = 'scim' | 'saml' | 'oidc';

export interface IdpGroup {
  tenantId: string;
  id: string;
  source: GroupSource;
  displayName: string;
  externalId: string | null;
  doc: ScimDoc;
  version: number;
  createdAt: number;
  updatedAt: number;
}

export interface MemberRef {
  value: string;
  type?: 'User' | 'Group';
}

/** One step of a membership change, applied in request order. */
export type MemberStep =
  | { kind: 'add'; members: MemberRef[] }
  | { kind: 'remove'; ids: string[] }
  | { kind: 'removeAll' }
  | { kind: 'replaceAll'; members: MemberRef[] };

export interface MemberDelta {
  added: { id: string; type: 'User' | 'Group' }[];
  removed: string[];
}

type Row = Record<string, unknown>;

export function groupFromRow(r: Row): IdpGroup {
  return {
    tenantId: String(r.tenant_id),
    id: String(r.id),
    source: r.source as GroupSource,
    displayName: String(r.display_name),
    externalId: (r.external_id as string | null) ?? null,
    doc: parseJson<ScimDoc>(r.scim_doc, {}),
    version: Number(r.version),
    createdAt: toMs(r.created_at)!,
    updatedAt: toMs(r.updated_at)!,
  };
}

function checkedDisplayName(doc: ScimDoc): string {
  const name = doc.displayName;
  if (typeof name !== 'string' || name.trim() === '') {
    throw new InvalidInput('display_name_required', 'displayName is required', { scimType: 'invalidValue' });
  }
  if (name.length > 255)
    throw new InvalidInput('invalid_display_name', 'displayName must be at most 255 characters', {
      scimType: 'invalidValue',
    });
  return name;
}

function nameTaken(name: string, cause: unknown): Conflict {
  return new Conflict('group_name_taken', `a group named "${name}" already exists in this tenant`, {
    scimType: 'uniqueness',
    cause,
  });
}

function columns(doc: ScimDoc) {
  const displayName = checkedDisplayName(doc);
  return {
    display_name: displayName,
    display_name_key: uniqueKey('displayName', displayName, 255),
    external_id: typeof doc.externalId === 'string' ? doc.externalId : null,
    scim_doc: JSON.stringify(doc),
  };
}

export async function getGroup(
  db: Knex,
  tenantId: string,
  id: string,
  source: GroupSource = 'scim',
): Promise<IdpGroup | undefined> {
  const row = await db('idp_groups').where({ tenant_id: tenantId, id, source }).first();
  return row ? groupFromRow(row) : undefined;
}

function groupNotFound(id: string): NotFound {
  return new NotFound('group_not_found', `no group with id "${id}"`);
}

export async function requireGroup(db: Knex, tenantId: string, id: string): Promise<IdpGroup> {
  const g = await getGroup(db, tenantId, id);
  if (!g) throw groupNotFound(id);
  return g;
}

export async function insertGroup(
  trx: Knex,
  tenantId: string,
  doc: ScimDoc,
  source: GroupSource,
  now: number,
): Promise<IdpGroup> {
  const cols = columns(doc);
  const row = { tenant_id: tenantId, id: newId(), source, ...cols, version: 1, created_at: now, updated_at: now };
  try {
    await trx('idp_groups').insert(row);
  } catch (err) {
    if (isUniqueViolation(err)) throw nameTaken(cols.display_name, err);
    throw err;
  }
  return groupFromRow(row);
}

/** Writes a locked group's new attributes (see lockGroupForChange). */
export async function writeGroupDoc(trx: Knex, locked: IdpGroup, doc: ScimDoc): Promise<IdpGroup> {
  const cols = columns(doc);
  try {
    await trx('idp_groups').where({ tenant_id: locked.tenantId, id: locked.id }).update(cols);
  } catch (err) {
    if (isUniqueViolation(err)) throw nameTaken(cols.display_name, err);
    throw err;
  }
  return { ...locked, displayName: cols.display_name, externalId: cols.external_id, doc };
}

/**
 * Takes a group's row for a change: bumps the version (holding the row lock until commit) and
 * returns the group as it is now, so the change applies to fresh state. Every change to a
 * group, membership included, starts here, which serialises concurrent changes of one group
 * instead of letting them interleave. With a `condition` (If-Match, If-None-Match), a version it
 * refuses fails with 412; without it, concurrent PATCHes (Okta renames with every membership
 * push) all apply.
 */
export async function lockGroupForChange(
  trx: Knex,
  tenantId: string,
  id: string,
  now: number,
  condition?: VersionCondition,
): Promise<IdpGroup> {
  const q = whereVersion(trx('idp_groups').where({ tenant_id: tenantId, id, source: 'scim' }), condition);
  const changed = await q.update({ version: trx.raw('version + 1'), updated_at: now });
  if (changed === 0)
    await noRowChanged(
      trx,
      'idp_groups',
      { tenant_id: tenantId, id, source: 'scim' },
      condition,
      groupNotFound(id),
      'group',
    );
  return groupFromRow(await trx('idp_groups').where({ tenant_id: tenantId, id }).first());
}

/** Resolves member ids to users or groups of the tenant; unknown ids fail the request, listed. */
async function resolveMembers(
  trx: Knex,
  tenantId: string,
  groupId: string,
  refs: MemberRef[],
): Promise<Map<string, 'User' | 'Group'>> {
  const ids = [...new Set(refs.map((r) => r.value))];
  const found = new Map<string, 'User' | 'Group'>();
  await eachChunk(trx, ids, async (part) => {
    // Locking reads: a user or group deleted concurrently is either seen gone here, or its
    // deletion waits for this change and then removes the membership row too.
    for (const r of await currentRead(trx('users').where('tenant_id', tenantId).whereIn('id', part).select('id')))
      found.set(String(r.id), 'User');
    const missing = part.filter((id) => !found.has(id));
    if (missing.length) {
      for (const r of await currentRead(
        trx('idp_groups').where({ tenant_id: tenantId, source: 'scim' }).whereIn('id', missing).select('id'),
      )) {
        found.set(String(r.id), 'Group');
      }
    }
  });
  const unknown = ids.filter((id) => !found.has(id));
  if (unknown.length) {
    const shown = unknown
      .slice(0, 20)
      .map((id) => `"${id}"`)
      .join(', ');
    throw new InvalidInput(
      'unknown_members',
      `no user or group with id ${shown}${unknown.length > 20 ? ` and ${unknown.length - 20} more` : ''}`,
      {
        scimType: 'invalidValue',
        details: { unknownMembers: unknown },
      },
    );
  }
  if (found.has(groupId))
    throw new InvalidInput('self_member', 'a group cannot be a member of itself', { scimType: 'invalidValue' });
  for (const ref of refs) {
    if (ref.type && ref.type !== found.get(ref.value)) {
      throw new InvalidInput(
        'member_type_mismatch',
        `member "${ref.value}" is a ${found.get(ref.value)}, not a ${ref.type}`,
        { scimType: 'invalidValue' },
      );
    }
  }
  return found;
}

async function presentAmong(trx: Knex, tenantId: string, groupId: string, ids: string[]): Promise<Set<string>> {
  const rows = await inChunks(trx, ids, (part) =>
    trx('idp_group_members')
      .where({ tenant_id: tenantId, group_id: groupId })
      .whereIn('member_id', part)
      .select('member_id'),
  );
  return new Set(rows.map((r) => String(r.member_id)));
}

/**
 * Every member of a group whose membership a replace or remove of all members rewrites. Such a
 * change costs the group's size, not the request's, so it is refused past the members cap
 * (reading at most one row more): a larger group is emptied by removing members by value.
 */
async function allMemberIds(trx: Knex, tenantId: string, groupId: string): Promise<string[]> {
  const cap = SCIM_LIMITS.membersPerRequest;
  const rows = await trx('idp_group_members')
    .where({ tenant_id: tenantId, group_id: groupId })
    .limit(cap + 1)
    .select('member_id');
  if (rows.length > cap) {
    throw new InvalidInput(
      'too_many_members',
      `members: replacing or removing all members is accepted for a group of at most ${cap} members and this one has more; remove members by value, at most ${cap} per request`,
      { scimType: 'invalidValue' },
    );
  }
  return rows.map((r) => String(r.member_id));
}

async function addMembers(
  trx: Knex,
  tenantId: string,
  groupId: string,
  types: Map<string, 'User' | 'Group'>,
  ids: string[],
  now: number,
) {
  const present = await presentAmong(trx, tenantId, groupId, ids);
  const fresh = ids.filter((id) => !present.has(id));
  // A concurrent request may have added the same member since the read above; the no-op
  // update keeps that from failing the whole change.
  await insertChunked(
    trx,
    'idp_group_members',
    fresh.map((id) => ({
      tenant_id: tenantId,
      group_id: groupId,
      member_id: id,
      member_type: types.get(id)!,
      created_at: now,
    })),
    { conflict: (q) => q.onConflict(['tenant_id', 'group_id', 'member_id']).merge(['member_type']) },
  );
  return fresh;
}

async function removeMembers(trx: Knex, tenantId: string, groupId: string, ids: string[]) {
  const present = [...(await presentAmong(trx, tenantId, groupId, ids))];
  await eachChunk(trx, present, (part) =>
    trx('idp_group_members').where({ tenant_id: tenantId, group_id: groupId }).whereIn('member_id', part).delete(),
  );
  return present;
}

/**
 * Applies membership steps in order and returns the net change. Cost follows the request:
 * adding 100 members to a group of 50,000 reads and writes about 100 rows. Only removeAll and
 * replaceAll read the whole membership, because their meaning depends on it.
 */
export async function applyMemberSteps(
  trx: Knex,
  tenantId: string,
  groupId: string,
  steps: MemberStep[],
  now: number,
): Promise<MemberDelta> {
  const refs = steps.flatMap((s) => (s.kind === 'add' || s.kind === 'replaceAll' ? s.members : []));
  const types = refs.length ? await resolveMembers(trx, tenantId, groupId, refs) : new Map<string, 'User' | 'Group'>();
  const added = new Map<string, 'User' | 'Group'>();
  const removed = new Set<string>();
  const noteAdded = (ids: string[]) =>
    ids.forEach((id) => (removed.has(id) ? removed.delete(id) : added.set(id, types.get(id)!)));
  const noteRemoved = (ids: string[]) => ids.forEach((id) => (added.has(id) ? added.delete(id) : removed.add(id)));
  for (const step of steps) {
    if (step.kind === 'add') {
      noteAdded(await addMembers(trx, tenantId, groupId, types, [...new Set(step.members.map((m) => m.value))], now));
    } else if (step.kind === 'remove') {
      noteRemoved(await removeMembers(trx, tenantId, groupId, [...new Set(step.ids)]));
    } else if (step.kind === 'removeAll') {
      noteRemoved(await removeMembers(trx, tenantId, groupId, await allMemberIds(trx, tenantId, groupId)));
    } else {
      const wanted = new Set(step.members.map((m) => m.value));
      const current = await allMemberIds(trx, tenantId, groupId);
      noteRemoved(
        await removeMembers(
          trx,
          tenantId,
          groupId,
          current.filter((id) => !wanted.has(id)),
        ),
      );
      const have = new Set(current);
      noteAdded(
        await addMembers(
          trx,
          tenantId,
          groupId,
          types,
          [...wanted].filter((id) => !have.has(id)),
          now,
        ),
      );
    }
  }
  return { added: [...added].map(([id, type]) => ({ id, type })), removed: [...removed] };
}

export interface MemberView {
  value: string;
  type: 'User' | 'Group';
  display: string | null;
}

/** At most `limit` member rows of some groups, with display names. */
async function memberRows(
  db: Knex,
  tenantId: string,
  groupIds: string[],
  limit: number,
): Promise<Record<string, unknown>[]> {
  return db('idp_group_members as m')
    .leftJoin('users as u', function () {
      this.on('u.tenant_id', 'm.tenant_id').andOn('u.id', 'm.member_id');
    })
    .leftJoin('idp_groups as g', function () {
      this.on('g.tenant_id', 'm.tenant_id').andOn('g.id', 'm.member_id');
    })
    .where('m.tenant_id', tenantId)
    .whereIn('m.group_id', groupIds)
    .orderBy(['m.group_id', 'm.member_id'])
    .limit(limit)
    .select(
      'm.group_id',
      'm.member_id',
      'm.member_type',
      'u.user_name',
      'u.display_name as u_display',
      'g.display_name as g_display',
    );
}

function collect(out: Map<string, MemberView[]>, groupIds: string[], rows: Record<string, unknown>[]): void {
  for (const id of groupIds) out.set(id, []);
  for (const r of rows) {
    out.get(String(r.group_id))!.push({
      value: String(r.member_id),
      type: r.member_type as 'User' | 'Group',
      display: ((r.member_type === 'User' ? (r.u_display ?? r.user_name) : r.g_display) as string | null) ?? null,
    });
  }
}

/**
 * Members of groups, for serialisation, while their total stays within `budget`: groups are
 * taken in the order given, and the first one whose members would pass the budget, and every
 * group after it, is left out of the map (its members are not returned). However large the
 * groups, this reads at most about three times the budget in rows.
 */
export async function loadMembersWithin(
  db: Knex,
  tenantId: string,
  groupIds: string[],
  budget: number,
): Promise<Map<string, MemberView[]>> {
  const out = new Map<string, MemberView[]>();
  let left = budget;
  for (const part of inListChunks(db, groupIds)) {
    const rows = await memberRows(db, tenantId, part, left + 1);
    if (rows.length <= left) {
      collect(out, part, rows);
      left -= rows.length;
      continue;
    }
    // This batch passes the budget: take its groups one at a time until one does not fit.
    for (const id of part) {
      const own = await memberRows(db, tenantId, [id], left + 1);
      if (own.length > left) return out;
      collect(out, [id], own);
      left -= own.length;
    }
  }
  return out;
}

type GroupRef = { id: string; displayName: string };

/** At most `limit` rows of the SCIM groups some users are direct members of. */
async function groupRows(
  db: Knex,
  tenantId: string,
  userIds: string[],
  limit: number,
): Promise<Record<string, unknown>[]> {
  return (
    db('idp_group_members as m')
      .join('idp_groups as g', function () {
        this.on('g.tenant_id', 'm.tenant_id').andOn('g.id', 'm.group_id');
      })
      .where('m.tenant_id', tenantId)
      .whereIn('m.member_id', userIds)
      .andWhere('g.source', 'scim')
      // In index order, so the LIMIT stops the read: ordering by name would sort every row first.
      .orderBy('m.member_id')
      .limit(limit)
      .select('m.member_id', 'g.id', 'g.display_name', 'g.display_name_key')
  );
}

/**
 * The SCIM groups each user is a direct member of, while their total stays within `budget`, as
 * loadMembersWithin does for members: the first user whose groups would pass it, and every user
 * after, is left out of the map (comes without `groups`). Reads about three times the budget at most.
 */
export async function groupsOfUsers(
  db: Knex,
  tenantId: string,
  userIds: string[],
  budget: number,
): Promise<Map<string, GroupRef[]>> {
  const out = new Map<string, GroupRef[]>();
  const collectGroups = (ids: string[], rows: Record<string, unknown>[]) => {
    const sorted = [...rows].sort((a, b) =>
      String(a.display_name_key) < String(b.display_name_key)
        ? -1
        : String(a.display_name_key) > String(b.display_name_key)
          ? 1
          : 0,
    );
    for (const id of ids) out.set(id, []);
    for (const r of sorted)
      out.get(String(r.member_id))!.push({ id: String(r.id), displayName: String(r.display_name) });
  };
  let left = budget;
  for (const part of inListChunks(db, userIds)) {
    const rows = await groupRows(db, tenantId, part, left + 1);
    if (rows.length <= left) {
      collectGroups(part, rows);
      left -= rows.length;
      continue;
    }
    for (const id of part) {
      const own = await groupRows(db, tenantId, [id], left + 1);
      if (own.length > left) return out;
      collectGroups([id], own);
      left -= own.length;
    }
  }
  return out;
}

export async function deleteGroup(
  trx: Knex,
  tenantId: string,
  id: string,
  condition?: VersionCondition,
): Promise<void> {
  const q = whereVersion(trx('idp_groups').where({ tenant_id: tenantId, id, source: 'scim' }), condition);
  // Memberships of this group in other groups go too; its own members cascade.
  await trx('idp_group_members').where({ tenant_id: tenantId, member_id: id }).delete();
  if ((await q.delete()) === 0)
    await noRowChanged(
      trx,
      'idp_groups',
      { tenant_id: tenantId, id, source: 'scim' },
      condition,
      groupNotFound(id),
      'group',
    );
}
