import type { Knex } from 'knex';
import type { Area } from '../access/catalogue.js';
import {
  lockLocalGroup,
  membershipAuthority,
  membershipsOf,
  putManualMembers,
  removeManualMembers,
  type LocalGroup,
  type MemberRole,
} from '../access/local-groups.js';
import { assertMayGrantMembership } from '../access/policies.js';
import type { Principal } from '../access/principal.js';
import { recordEvents } from '../audit/record.js';
import type { Ctx } from '../context.js';
import { inChunks } from '../db/batch.js';
import type { Db } from '../db/knex.js';
import { caseMappedKey } from '../directory/model/value-key.js';
import { Conflict, Forbidden, InvalidInput, NotFound, type FieldError } from '../errors.js';
import { groupEntity } from './workspace-audit.js';
import { quoted } from './workspace-checks.js';

/**
 * Commands on a local group's manual members and managers. Each runs in one transaction: lock
 * the group (version bump), authorize, mutate, record the audit events, answer.
 */

/** Most users one membership request may name (ids and emails together). */
export const MAX_MEMBERS_PER_REQUEST = 1000;

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
    throw new InvalidInput('no_users', 'name at least one user in userIds or emails', {
      fields: [{ path: 'body.userIds', message: 'userIds or emails must name at least one user' }],
    });
  }
  if (ids.length + emails.length > MAX_MEMBERS_PER_REQUEST) {
    throw new InvalidInput(
      'too_many_users',
      `at most ${MAX_MEMBERS_PER_REQUEST} users per request (ids and emails together)`,
      {
        fields: [
          {
            path: 'body.userIds',
            message: `userIds and emails together must name at most ${MAX_MEMBERS_PER_REQUEST} users`,
          },
        ],
      },
    );
  }
  const byId = new Map<string, Person>();
  const uniqueIds = [...new Set(ids)];
  for (const r of await inChunks(trx, uniqueIds, (part) =>
    trx('users').where({ tenant_id: tenantId }).whereIn('id', part).select('id', 'email'),
  )) {
    byId.set(String(r.id), { id: String(r.id), email: (r.email as string | null) ?? null });
  }
  const key = (e: string) => caseMappedKey(e).slice(0, 320);
  const byEmail = new Map<string, Person>();
  const keys = [...new Set(emails.map(key))];
  for (const r of await inChunks(trx, keys, (part) =>
    trx('users').where({ tenant_id: tenantId }).whereIn('email_key', part).select('id', 'email', 'email_key'),
  )) {
    byEmail.set(String(r.email_key), { id: String(r.id), email: (r.email as string | null) ?? null });
  }
  const fields: FieldError[] = [];
  ids.forEach(
    (id, i) =>
      byId.has(id) || fields.push({ path: `body.userIds.${i}`, message: `"${id}" is not a user of this tenant` }),
  );
  emails.forEach(
    (e, i) =>
      byEmail.has(key(e)) ||
      fields.push({ path: `body.emails.${i}`, message: `"${e}" is not the email of a user of this tenant` }),
  );
  if (fields.length) {
    const unknownUserIds = [...new Set(ids.filter((id) => !byId.has(id)))];
    const unknownEmails = [...new Set(emails.filter((e) => !byEmail.has(key(e))))];
    throw new InvalidInput(
      'unknown_users',
      `no user with ${[unknownUserIds.length ? `id ${quoted(unknownUserIds)}` : '', unknownEmails.length ? `email ${quoted(unknownEmails)}` : ''].filter(Boolean).join(' or ')}; nothing was changed`,
      {
        fields,
        details: { unknownUserIds, unknownEmails },
      },
    );
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
  if (!authority)
    throw new Forbidden(
      'not_allowed',
      `only admins, user managers and managers of group "${group.name}" may change its members`,
    );
  return { group, authority };
}

function managerLimit(message: string): Forbidden {
  return new Forbidden(
    'group_manager_limit',
    `${message}: a group's managers add and remove members; roles are for admins and user managers`,
  );
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
export async function addGroupMembers(
  db: Db,
  catalogue: Area[],
  ctx: Ctx,
  p: Principal,
  groupId: string,
  sel: MemberSelection & { role?: MemberRole },
): Promise<MembersAdded> {
  return db.tx(async (trx) => {
    const { group, authority } = await membershipGroup(trx, catalogue, ctx, p, groupId);
    const people = await resolvePeople(trx, ctx.tenantId, sel);
    const current = await membershipsOf(
      trx,
      ctx.tenantId,
      groupId,
      people.map((x) => x.id),
    );
    const role = sel.role ?? 'member';
    const out: MembersAdded = { added: [], updated: [], unchanged: [] };
    for (const person of people) {
      const had = current.get(person.id)?.manual ?? null;
      if (had === null) out.added.push({ ...person, role });
      else if (sel.role !== undefined && sel.role !== had) out.updated.push({ ...person, role, previousRole: had });
      else out.unchanged.push({ ...person, role: had });
    }
    await assertMayGrantMembership(trx, catalogue, p, group, {
      members: out.added.length > 0,
      managers: role === 'manager' && out.added.length + out.updated.length > 0,
    });
    if (authority === 'group_manager' && out.updated.length)
      throw managerLimit(`you cannot change the role of manager ${quoted(out.updated.map((u) => u.email ?? u.id))}`);
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
      ...out.added.map((x) => ({
        event: 'group.member_added',
        entity: groupEntity(group),
        before: null,
        after: { userId: x.id, email: x.email, role: x.role },
      })),
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

async function removePeople(
  trx: Knex,
  ctx: Ctx,
  group: LocalGroup,
  authority: 'full' | 'group_manager',
  people: Person[],
): Promise<MembersRemoved> {
  const current = await membershipsOf(
    trx,
    ctx.tenantId,
    group.id,
    people.map((x) => x.id),
  );
  const out: MembersRemoved = { removed: [], notRemoved: [] };
  for (const person of people) {
    const m = current.get(person.id);
    if (!m) out.notRemoved.push({ ...person, reason: 'not_a_member' });
    else if (m.manual === null) out.notRemoved.push({ ...person, reason: 'rule_membership' });
    else {
      const remainingRole = m.derived.length
        ? m.derived.some((d) => d.role === 'manager')
          ? 'manager'
          : 'member'
        : null;
      out.removed.push({ ...person, role: m.manual, remainingRole });
    }
  }
  const managers = out.removed.filter((x) => x.role === 'manager');
  if (authority === 'group_manager' && managers.length)
    throw managerLimit(`you cannot remove manager ${quoted(managers.map((x) => x.email ?? x.id))}`);
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
export async function removeGroupMembers(
  db: Db,
  catalogue: Area[],
  ctx: Ctx,
  p: Principal,
  groupId: string,
  sel: MemberSelection,
): Promise<MembersRemoved> {
  return db.tx(async (trx) => {
    const { group, authority } = await membershipGroup(trx, catalogue, ctx, p, groupId);
    return removePeople(trx, ctx, group, authority, await resolvePeople(trx, ctx.tenantId, sel));
  });
}

/** Removes one user's manual membership; 404 when there is none, 409 when only rules give it. */
export async function removeGroupMember(
  db: Db,
  catalogue: Area[],
  ctx: Ctx,
  p: Principal,
  groupId: string,
  userId: string,
): Promise<void> {
  await db.tx(async (trx) => {
    const { group, authority } = await membershipGroup(trx, catalogue, ctx, p, groupId);
    const row = await trx('users').where({ tenant_id: ctx.tenantId, id: userId }).select('id', 'email').first();
    if (!row) throw new NotFound('user_not_found', `no user with id "${userId}"`);
    const out = await removePeople(trx, ctx, group, authority, [
      { id: userId, email: (row.email as string | null) ?? null },
    ]);
    const refused = out.notRemoved[0];
    if (refused?.reason === 'not_a_member')
      throw new NotFound('not_a_member', `${refused.email ?? userId} is not a member of group "${group.name}"`);
    if (refused) {
      throw new Conflict(
        'rule_membership',
        `${refused.email ?? userId} is a member of group "${group.name}" through mapping rules only; change the rule or the IdP group instead`,
      );
    }
  });
}
