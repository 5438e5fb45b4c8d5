import type { Ctx } from '../context.js';
import type { Db } from '../db/knex.js';
import { InvalidInput } from '../errors.js';
import { recordEvent } from '../audit/record.js';
import { deleteUser, insertUser, lockUser, requireUser, writeUserDoc, type User } from '../directory/users.js';
import { applyPatchToDoc } from '../scim/patch/apply-user.js';
import type { PatchOp } from '../scim/patch/parse.js';
import type { VersionCondition } from '../db/versioned.js';
import { normalizeResource, type ScimDoc } from '../directory/model/normalize.js';
import { USER_RT } from '../directory/model/registry.js';
import { releaseSeat, takeSeat } from '../tenants/seats.js';
import { noteAdminLoss, endUserAccess } from './admins.js';
import { syncAfterDirectoryChange } from './mapping.js';
import { lockMapping } from '../mapping/lock.js';
import { endSessionsOf } from './sessions.js';

/** A SCIM password is accepted and discarded: people sign in only through SSO. */
function withoutPassword(doc: ScimDoc): ScimDoc {
  const { password: _p, ...rest } = doc;
  return rest;
}

function entity(u: User) {
  return { type: 'user', id: u.id, name: u.userName };
}

/** The top-level attributes that differ, before and after: what the audit log records. */
function changedAttributes(before: ScimDoc, after: ScimDoc): { before: ScimDoc; after: ScimDoc } {
  const b: ScimDoc = {};
  const a: ScimDoc = {};
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    if (JSON.stringify(before[key]) !== JSON.stringify(after[key])) {
      b[key] = before[key] ?? null;
      a[key] = after[key] ?? null;
    }
  }
  return { before: b, after: a };
}

function eventFor(before: User, after: User): string {
  if (before.active && !after.active) return 'scim.user.deactivated';
  if (!before.active && after.active) return 'scim.user.reactivated';
  return 'scim.user.updated';
}

export async function createScimUser(db: Db, ctx: Ctx, body: unknown): Promise<User> {
  const doc = withoutPassword(normalizeResource(USER_RT, body).doc);
  return db.tx(async (trx) => {
    await takeSeat(trx, ctx.tenantId);
    const user = await insertUser(trx, ctx.tenantId, { doc, source: 'scim' }, ctx.now.getTime());
    await recordEvent(trx, ctx, { event: 'scim.user.created', entity: entity(user), before: null, after: doc });
    return user;
  });
}

async function change(
  db: Db,
  ctx: Ctx,
  id: string,
  expected: VersionCondition | undefined,
  next: (current: User) => ScimDoc,
): Promise<User> {
  return db.tx(async (trx) => {
    // First statement: the mapping lock (src/mapping/lock.ts).
    await lockMapping(trx, ctx.tenantId, 'share');
    const locked = await lockUser(trx, ctx.tenantId, id, ctx.now.getTime(), expected);
    const doc = withoutPassword(next(locked));
    const updated = await writeUserDoc(trx, locked, doc);
    const diff = changedAttributes(locked.doc, doc);
    await recordEvent(trx, ctx, { event: eventFor(locked, updated), entity: entity(updated), ...diff });
    if (locked.active && !updated.active) await endSessionsOf(trx, ctx.tenantId, id);
    await noteAdminLoss(trx, ctx, locked, updated);
    // Deactivation suspends what rules derived for the user; reactivation restores it.
    if (locked.status !== updated.status) await syncAfterDirectoryChange(trx, ctx, [id]);
    return updated;
  });
}

/** PUT: the body is the whole new resource (Okta sends id and meta back; they are read-only). */
export function replaceScimUser(
  db: Db,
  ctx: Ctx,
  id: string,
  body: unknown,
  expected?: VersionCondition,
): Promise<User> {
  const { doc, readOnlySeen } = normalizeResource(USER_RT, body);
  if (typeof readOnlySeen.id === 'string' && readOnlySeen.id !== id) {
    throw new InvalidInput('mutability', `id is read-only: the body says "${readOnlySeen.id}" for user "${id}"`, {
      scimType: 'mutability',
    });
  }
  return change(db, ctx, id, expected, () => doc);
}

export function patchScimUser(
  db: Db,
  ctx: Ctx,
  id: string,
  ops: PatchOp[],
  expected?: VersionCondition,
): Promise<User> {
  return change(db, ctx, id, expected, (current) => applyPatchToDoc(current.doc, ops, USER_RT, { id }));
}

export async function deleteScimUser(db: Db, ctx: Ctx, id: string, expected?: VersionCondition): Promise<void> {
  await db.tx(async (trx) => {
    // First statement: the mapping lock (src/mapping/lock.ts).
    await lockMapping(trx, ctx.tenantId, 'share');
    const user = await requireUser(trx, ctx.tenantId, id);
    await endSessionsOf(trx, ctx.tenantId, id);
    await deleteUser(trx, ctx.tenantId, id, expected);
    await releaseSeat(trx, ctx.tenantId);
    await endUserAccess(trx, ctx.tenantId, id, ctx.now.getTime());
    await recordEvent(trx, ctx, { event: 'scim.user.deleted', entity: entity(user), before: user.doc, after: null });
    await noteAdminLoss(trx, ctx, user, null);
  });
}
