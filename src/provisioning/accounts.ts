import type { Knex } from 'knex';
import type { Area } from '../access/catalogue.js';
import { checkInheritance } from '../access/effective.js';
import type { AreaSettings } from '../access/levels.js';
import {
  assertMayAssignRole,
  assertMayChangeEmail,
  assertMayChangeUser,
  assertMayGrantCrm,
  assertWithinOwn,
  wouldHold,
} from '../access/policies.js';
import type { Principal } from '../access/principal.js';
import { getTemplate, requireTemplate, type RoleTemplate } from '../access/templates.js';
import { getOwnSettings, putOwnSettings } from '../access/user-settings.js';
import { recordEvent, recordEvents, type AuditInput } from '../audit/record.js';
import type { Ctx } from '../context.js';
import type { Db } from '../db/knex.js';
import {
  deleteUser,
  findUserByEmail,
  lockUser,
  primaryEmail,
  writeAccountFields,
  writeUserDoc,
  type User,
} from '../directory/users.js';
import { Conflict, InvalidInput, NotFound, Unprocessable } from '../errors.js';
import type { ScimDoc } from '../directory/model/normalize.js';
import { assertNotLastAdmin, endUserAccess } from './admins.js';
import { syncAfterDirectoryChange } from './mapping.js';
import { lockMapping } from '../mapping/lock.js';
import { endSessionsOf } from './sessions.js';
import { releaseSeat } from '../tenants/seats.js';

export interface AccountChange {
  role?: User['role'];
  status?: 'active' | 'suspended';
  templateId?: string | null;
  crmAccess?: boolean;
  email?: string;
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

function entity(u: User) {
  return { type: 'user', id: u.id, name: u.email ?? u.userName };
}

async function templateFor(trx: Knex, tenantId: string, id: string): Promise<RoleTemplate> {
  try {
    return await requireTemplate(trx, tenantId, id);
  } catch (err) {
    if (err instanceof NotFound) {
      throw new Unprocessable('unknown_template', `no role template with id "${id}"`, {
        fields: [{ path: 'body.templateId', message: 'is not a role template of this tenant' }],
      });
    }
    throw err;
  }
}

/** The SCIM document with `email` as its primary address, other addresses kept. */
function withPrimaryEmail(doc: ScimDoc, email: string): ScimDoc {
  const others = (Array.isArray(doc.emails) ? (doc.emails as Record<string, unknown>[]) : []).filter(
    (e) => e.primary !== true,
  );
  return {
    ...doc,
    emails: [{ value: email, type: 'work', primary: true }, ...others.map((e) => ({ ...e, primary: false }))],
  };
}

/**
 * Changes what SSO never sets: role, status, template, CRM access, and the email. One
 * transaction, one audit event per field that changed.
 */
export async function changeAccount(
  db: Db,
  catalogue: Area[],
  ctx: Ctx,
  p: Principal,
  id: string,
  change: AccountChange,
): Promise<User> {
  return db.tx(async (trx) => {
    // First statement: the mapping lock (src/mapping/lock.ts).
    await lockMapping(trx, ctx.tenantId, 'share');
    const locked = await lockUser(trx, ctx.tenantId, id, ctx.now.getTime());
    assertMayChangeUser(p, catalogue, locked, 'change the account');
    const events: AuditInput[] = [];
    const e = (event: string, field: string, before: unknown, after: unknown) =>
      events.push({ event, entity: entity(locked), before: { [field]: before }, after: { [field]: after } });

    let next: User = locked;
    if (change.email !== undefined && change.email.trim() !== locked.email) {
      const email = change.email.trim();
      assertMayChangeEmail(p);
      if (!EMAIL.test(email))
        throw new InvalidInput('invalid_email', `"${change.email}" is not an email address`, {
          fields: [{ path: 'body.email', message: 'is not an email address' }],
        });
      const holder = await findUserByEmail(trx, ctx.tenantId, email);
      if (holder && holder.id !== locked.id)
        throw new Conflict('email_taken', `${email} already belongs to another user of this tenant`);
      // An invited person's userName is the address they were invited at, so it follows.
      const doc = withPrimaryEmail(
        locked.source === 'invite' && locked.userName === locked.email
          ? { ...locked.doc, userName: email }
          : locked.doc,
        email,
      );
      next = await writeUserDoc(trx, locked, doc);
      // Whoever holds a session may have signed in as the old address's owner.
      const sessionsEnded = await endSessionsOf(trx, ctx.tenantId, locked.id);
      events.push({
        event: 'user.email_changed',
        entity: entity(locked),
        before: { email: locked.email },
        after: { email: primaryEmail(doc), ...(sessionsEnded ? { sessionsEnded } : {}) },
      });
    }
    const role = change.role ?? locked.role;
    if (change.role !== undefined && change.role !== locked.role) {
      assertMayAssignRole(p, change.role);
      e('user.role_changed', 'role', locked.role, change.role);
    }
    if (role === 'admin' && change.crmAccess === false) {
      throw new Unprocessable('crm_always_on_for_admins', 'admins always have CRM access; it cannot be turned off', {
        fields: [{ path: 'body.crmAccess', message: 'cannot be false for an admin' }],
      });
    }
    const crmAccess = role === 'admin' ? true : (change.crmAccess ?? locked.crmAccess);
    if (crmAccess !== locked.crmAccess) {
      assertMayGrantCrm(p, crmAccess);
      e('user.crm_access_changed', 'crmAccess', locked.crmAccess, crmAccess);
    }
    let status = locked.status;
    if (change.status !== undefined && change.status !== locked.status) {
      if (locked.status === 'invited' && change.status === 'active') {
        throw new Conflict(
          'invitation_pending',
          `${locked.email} has not accepted the invitation yet; they become active by accepting it`,
        );
      }
      status = change.status;
      e(status === 'suspended' ? 'user.suspended' : 'user.reactivated', 'status', locked.status, status);
      // The IdP stays authoritative for its users: reactivating someone it deactivated makes
      // them active in SCIM too, so its next `active: false` is a change again and applies.
      if (status === 'active' && !locked.active) next = await writeUserDoc(trx, next, { ...next.doc, active: true });
    }
    let templateId = locked.templateId;
    if (change.templateId !== undefined && change.templateId !== locked.templateId) {
      const template = change.templateId ? await templateFor(trx, ctx.tenantId, change.templateId) : null;
      const current = locked.templateId ? ((await getTemplate(trx, ctx.tenantId, locked.templateId)) ?? null) : null;
      const own = await getOwnSettings(trx, ctx.tenantId, id);
      assertWithinOwn(p, wouldHold(catalogue, own, template), wouldHold(catalogue, own, current));
      templateId = template?.id ?? null;
      e('user.template_changed', 'templateId', locked.templateId, templateId);
    }
    next = await writeAccountFields(trx, next, { role, status, templateId, crmAccess });
    await assertNotLastAdmin(trx, ctx, locked, next);
    await recordEvents(trx, ctx, events);
    if (next.status !== locked.status) await syncAfterDirectoryChange(trx, ctx, [id]);
    return next;
  });
}

/** Permanent: the seat is freed, the user's keys stop working, the audit log keeps its events. */
export async function deleteAccount(db: Db, catalogue: Area[], ctx: Ctx, p: Principal, id: string): Promise<void> {
  await db.tx(async (trx) => {
    // First statement: the mapping lock (src/mapping/lock.ts).
    await lockMapping(trx, ctx.tenantId, 'share');
    const locked = await lockUser(trx, ctx.tenantId, id, ctx.now.getTime());
    assertMayChangeUser(p, catalogue, locked, 'delete the account');
    await assertNotLastAdmin(trx, ctx, locked, null);
    await deleteUser(trx, ctx.tenantId, id);
    await releaseSeat(trx, ctx.tenantId);
    await endUserAccess(trx, ctx.tenantId, id, ctx.now.getTime());
    await recordEvent(trx, ctx, {
      event: 'user.deleted',
      entity: entity(locked),
      before: { email: locked.email, role: locked.role, status: locked.status, source: locked.source },
      after: null,
    });
  });
}

/** Replaces a user's own area settings, held to the inheritance rule and the actor's own reach. */
export async function setOwnPermissions(
  db: Db,
  catalogue: Area[],
  ctx: Ctx,
  p: Principal,
  id: string,
  areas: AreaSettings,
): Promise<User> {
  return db.tx(async (trx) => {
    const locked = await lockUser(trx, ctx.tenantId, id, ctx.now.getTime());
    assertMayChangeUser(p, catalogue, locked, 'change the permissions');
    const template = locked.templateId ? ((await getTemplate(trx, ctx.tenantId, locked.templateId)) ?? null) : null;
    // Without a template the base is all none, so a sub-section cannot be set under an unset area.
    checkInheritance(catalogue, areas, wouldHold(catalogue, {}, template));
    const before = await getOwnSettings(trx, ctx.tenantId, id);
    assertWithinOwn(p, wouldHold(catalogue, areas, template), wouldHold(catalogue, before, template));
    await putOwnSettings(trx, ctx.tenantId, id, areas, ctx.now.getTime());
    if (JSON.stringify(before) !== JSON.stringify(areas)) {
      await recordEvent(trx, ctx, {
        event: 'permissions.changed',
        entity: entity(locked),
        before: { areas: before },
        after: { areas },
      });
    }
    return locked;
  });
}
