import type { Knex } from 'knex';
import { currentRead } from '../db/dialect.js';
import { Conflict, InvalidInput, NotFound } from '../errors.js';
import { newId } from '../db/ids.js';
import { isUniqueViolation } from '../db/errors.js';
import { noRowChanged } from '../db/versioned.js';
import { parseJson, toMs } from '../db/rows.js';
import type { ScimDoc } from '../scim/schema/normalize.js';
import { caseMappedKey } from '../scim/schema/value-key.js';

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
  if (name.length > 255) throw new InvalidInput('invalid_display_name', 'displayName must be at most 255 characters', { scimType: 'invalidValue' });
  return name;
}

function nameTaken(name: string, cause: unknown): Conflict {
  return new Conflict('group_name_taken', `a group named "${name}" already exists in this tenant`, { scimType: 'uniqueness', cause });
}

function columns(doc: ScimDoc) {
  const displayName = checkedDisplayName(doc);
  return {
    display_name: displayName,
    display_name_key: caseMappedKey(displayName),
    external_id: typeof doc.externalId === 'string' ? doc.externalId : null,
    scim_doc: JSON.stringify(doc),
  };
}

export async function getGroup(db: Knex, tenantId: string, id: string, source: GroupSource = 'scim'): Promise<IdpGroup | undefined> {
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

export async function insertGroup(trx: Knex, tenantId: string, doc: ScimDoc, source: GroupSource, now: number): Promise<IdpGroup> {
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
 * instead of letting them interleave. With `expectedVersion` (If-Match), a stale version fails
 * with 412; without it, concurrent PATCHes (Okta renames with every membership push) all apply.
 */
export async function lockGroupForChange(trx: Knex, tenantId: string, id: string, now: number, expectedVersion?: number): Promise<IdpGroup> {
  const q = trx('idp_groups').where({ tenant_id: tenantId, id, source: 'scim' });
  if (expectedVersion !== undefined) q.andWhere('version', expectedVersion);
  const changed = await q.update({ version: trx.raw('version + 1'), updated_at: now });
  if (changed === 0) await noRowChanged(trx, 'idp_groups', { tenant_id: tenantId, id, source: 'scim' }, expectedVersion, groupNotFound(id), 'group');
  return groupFromRow(await trx('idp_groups').where({ tenant_id: tenantId, id }).first());
}

function chunks<T>(list: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size));
  return out;
}

const CHUNK = 500;

/** Resolves member ids to users or groups of the tenant; unknown ids fail the request, listed. */
async function resolveMembers(trx: Knex, tenantId: string, groupId: string, refs: MemberRef[]): Promise<Map<string, 'User' | 'Group'>> {
  const ids = [...new Set(refs.map((r) => r.value))];
  const found = new Map<string, 'User' | 'Group'>();
  for (const part of chunks(ids, CHUNK)) {
    // Locking reads: a user or group deleted concurrently is either seen gone here, or its
    // deletion waits for this change and then removes the membership row too.
    for (const r of await currentRead(trx('users').where('tenant_id', tenantId).whereIn('id', part).select('id'))) found.set(String(r.id), 'User');
    const missing = part.filter((id) => !found.has(id));
    if (missing.length) {
      for (const r of await currentRead(trx('idp_groups').where({ tenant_id: tenantId, source: 'scim' }).whereIn('id', missing).select('id'))) {
        found.set(String(r.id), 'Group');
      }
    }
  }
  const unknown = ids.filter((id) => !found.has(id));
  if (unknown.length) {
    const shown = unknown.slice(0, 20).map((id) => `"${id}"`).join(', ');
    throw new InvalidInput('unknown_members', `no user or group with id ${shown}${unknown.length > 20 ? ` and ${unknown.length - 20} more` : ''}`, {
      scimType: 'invalidValue',
      details: { unknownMembers: unknown },
    });
  }
  if (found.has(groupId)) throw new InvalidInput('self_member', 'a group cannot be a member of itself', { scimType: 'invalidValue' });
  for (const ref of refs) {
    if (ref.type && ref.type !== found.get(ref.value)) {
      throw new InvalidInput('member_type_mismatch', `member "${ref.value}" is a ${found.get(ref.value)}, not a ${ref.type}`, { scimType: 'invalidValue' });
    }
  }
  return found;
}

async function presentAmong(trx: Knex, tenantId: string, groupId: string, ids: string[]): Promise<Set<string>> {
  const present = new Set<string>();
  for (const part of chunks(ids, CHUNK)) {
    const rows = await trx('idp_group_members').where({ tenant_id: tenantId, group_id: groupId }).whereIn('member_id', part).select('member_id');
    for (const r of rows) present.add(String(r.member_id));
  }
  return present;
}

async function allMemberIds(trx: Knex, tenantId: string, groupId: string): Promise<string[]> {
  return (await trx('idp_group_members').where({ tenant_id: tenantId, group_id: groupId }).select('member_id')).map((r) => String(r.member_id));
}

async function addMembers(trx: Knex, tenantId: string, groupId: string, types: Map<string, 'User' | 'Group'>, ids: string[], now: number) {
  const present = await presentAmong(trx, tenantId, groupId, ids);
  const fresh = ids.filter((id) => !present.has(id));
  for (const part of chunks(fresh, CHUNK)) {
    // A concurrent request may have added the same member since the read above; the no-op
    // update keeps that from failing the whole change.
    await trx('idp_group_members')
      .insert(part.map((id) => ({ tenant_id: tenantId, group_id: groupId, member_id: id, member_type: types.get(id)!, created_at: now })))
      .onConflict(['tenant_id', 'group_id', 'member_id'])
      .merge(['member_type']);
  }
  return fresh;
}

async function removeMembers(trx: Knex, tenantId: string, groupId: string, ids: string[]) {
  const present = [...(await presentAmong(trx, tenantId, groupId, ids))];
  for (const part of chunks(present, CHUNK)) {
    await trx('idp_group_members').where({ tenant_id: tenantId, group_id: groupId }).whereIn('member_id', part).delete();
  }
  return present;
}

/**
 * Applies membership steps in order and returns the net change. Cost follows the request:
 * adding 100 members to a group of 50,000 reads and writes about 100 rows. Only removeAll and
 * replaceAll read the whole membership, because their meaning depends on it.
 */
export async function applyMemberSteps(trx: Knex, tenantId: string, groupId: string, steps: MemberStep[], now: number): Promise<MemberDelta> {
  const refs = steps.flatMap((s) => (s.kind === 'add' || s.kind === 'replaceAll' ? s.members : []));
  const types = refs.length ? await resolveMembers(trx, tenantId, groupId, refs) : new Map<string, 'User' | 'Group'>();
  const added = new Map<string, 'User' | 'Group'>();
  const removed = new Set<string>();
  const noteAdded = (ids: string[]) => ids.forEach((id) => (removed.has(id) ? removed.delete(id) : added.set(id, types.get(id)!)));
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
      noteRemoved(await removeMembers(trx, tenantId, groupId, current.filter((id) => !wanted.has(id))));
      const have = new Set(current);
      noteAdded(await addMembers(trx, tenantId, groupId, types, [...wanted].filter((id) => !have.has(id)), now));
    }
  }
  return { added: [...added].map(([id, type]) => ({ id, type })), removed: [...removed] };
}

export interface MemberView {
  value: string;
  type: 'User' | 'Group';
  display: string | null;
}

/** Members of several groups at once, with display names, for serialisation. */
export async function loadMembers(db: Knex, tenantId: string, groupIds: string[]): Promise<Map<string, MemberView[]>> {
  const out = new Map<string, MemberView[]>(groupIds.map((id) => [id, []]));
  for (const part of chunks(groupIds, CHUNK)) {
    const rows = await db('idp_group_members as m')
      .leftJoin('users as u', function () {
        this.on('u.tenant_id', 'm.tenant_id').andOn('u.id', 'm.member_id');
      })
      .leftJoin('idp_groups as g', function () {
        this.on('g.tenant_id', 'm.tenant_id').andOn('g.id', 'm.member_id');
      })
      .where('m.tenant_id', tenantId)
      .whereIn('m.group_id', part)
      .orderBy(['m.group_id', 'm.member_id'])
      .select('m.group_id', 'm.member_id', 'm.member_type', 'u.user_name', 'u.display_name as u_display', 'g.display_name as g_display');
    for (const r of rows) {
      out.get(String(r.group_id))!.push({
        value: String(r.member_id),
        type: r.member_type as 'User' | 'Group',
        display: (r.member_type === 'User' ? (r.u_display ?? r.user_name) : r.g_display) ?? null,
      });
    }
  }
  return out;
}

/** The SCIM groups each user is a direct member of. */
export async function groupsOfUsers(db: Knex, tenantId: string, userIds: string[]): Promise<Map<string, { id: string; displayName: string }[]>> {
  const out = new Map<string, { id: string; displayName: string }[]>(userIds.map((id) => [id, []]));
  for (const part of chunks(userIds, CHUNK)) {
    const rows = await db('idp_group_members as m')
      .join('idp_groups as g', function () {
        this.on('g.tenant_id', 'm.tenant_id').andOn('g.id', 'm.group_id');
      })
      .where('m.tenant_id', tenantId)
      .whereIn('m.member_id', part)
      .andWhere('g.source', 'scim')
      .orderBy(['m.member_id', 'g.display_name_key'])
      .select('m.member_id', 'g.id', 'g.display_name');
    for (const r of rows) out.get(String(r.member_id))!.push({ id: String(r.id), displayName: String(r.display_name) });
  }
  return out;
}

export async function deleteGroup(trx: Knex, tenantId: string, id: string, expectedVersion?: number): Promise<void> {
  const q = trx('idp_groups').where({ tenant_id: tenantId, id, source: 'scim' });
  if (expectedVersion !== undefined) q.andWhere('version', expectedVersion);
  // Memberships of this group in other groups go too; its own members cascade.
  await trx('idp_group_members').where({ tenant_id: tenantId, member_id: id }).delete();
  if ((await q.delete()) === 0) await noRowChanged(trx, 'idp_groups', { tenant_id: tenantId, id, source: 'scim' }, expectedVersion, groupNotFound(id), 'group');
}
