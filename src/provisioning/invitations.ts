import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import type { Area } from '../access/catalogue.js';
import { checkInheritance } from '../access/effective.js';
import type { AreaSettings } from '../access/levels.js';
import {
  assertMayAssignRole,
  assertMayChangeUser,
  assertMayGrantCrm,
  assertWithinOwn,
  wouldHold,
} from '../access/policies.js';
import { requireUserManager, type Principal } from '../access/principal.js';
import { requireTemplate } from '../access/templates.js';
import { putOwnSettings } from '../access/user-settings.js';
import { recordEvent } from '../audit/record.js';
import type { Ctx } from '../context.js';
import type { Db } from '../db/knex.js';
import {
  findUserByEmail,
  insertUser,
  lockUser,
  requireUser,
  writeAccountFields,
  type User,
} from '../directory/users.js';
import { Conflict, InvalidInput, NotFound, Unprocessable } from '../errors.js';
import { enqueueMail } from '../mail/outbox.js';
import { getTenant } from '../tenants/store.js';
import { hashToken } from '../tenants/tokens.js';
import { takeSeat } from '../tenants/seats.js';

export interface InvitationSettings {
  db: Db;
  catalogue: Area[];
  publicBaseUrl: string;
  inviteTtlMs: number;
}

export interface InviteInput {
  email: string;
  role: User['role'];
  templateId?: string | null;
  crmAccess?: boolean;
  /** Already parsed against the catalogue. */
  areas?: AreaSettings;
}

export interface Invitation {
  user: User;
  expiresAt: number;
}

const INVITE_PREFIX = 'roster_invite_';
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

function entity(u: User) {
  return { type: 'user', id: u.id, name: u.email ?? u.userName };
}

/** The link in the mail: the page behind it asks for a click before anything changes. */
export function invitationLink(publicBaseUrl: string, token: string): string {
  return `${publicBaseUrl}/invite/${encodeURIComponent(token)}`;
}

async function issueInvitationMail(
  trx: Knex,
  s: InvitationSettings,
  ctx: Ctx,
  user: User,
  now: number,
): Promise<number> {
  const token = INVITE_PREFIX + randomBytes(32).toString('base64url');
  const expiresAt = now + s.inviteTtlMs;
  // One live invitation per user: a resend overwrites the hash, so the old link stops working.
  const updated = await trx('invitations')
    .where({ tenant_id: ctx.tenantId, user_id: user.id })
    .update({
      token_hash: hashToken(token),
      expires_at: expiresAt,
      sends: trx.raw('sends + 1'),
    });
  if (updated === 0) {
    await trx('invitations').insert({
      tenant_id: ctx.tenantId,
      user_id: user.id,
      token_hash: hashToken(token),
      expires_at: expiresAt,
      created_at: now,
      sends: 1,
    });
  }
  const tenant = await getTenant(trx, ctx.tenantId);
  const link = invitationLink(s.publicBaseUrl, token);
  const days = Math.round(s.inviteTtlMs / 86_400_000);
  await enqueueMail(
    trx,
    ctx.tenantId,
    {
      kind: 'invitation',
      to: user.email!,
      subject: `You are invited to ${tenant.name}`,
      text: [
        `${ctx.actor.display ?? 'An administrator'} invited you to ${tenant.name} as ${user.role === 'admin' ? 'an admin' : 'a member'}.`,
        '',
        `Accept the invitation: ${link}`,
        '',
        `The link expires ${new Date(expiresAt).toISOString()}${days >= 1 ? ` (in ${days} day${days === 1 ? '' : 's'})` : ''}.`,
      ].join('\n'),
    },
    now,
  );
  return expiresAt;
}

/**
 * Invites a person: the user appears as invited and holds a seat from now on, with the role,
 * template, CRM access and area settings given; the mail goes out after commit.
 */
export async function inviteUser(
  s: InvitationSettings,
  ctx: Ctx,
  p: Principal,
  input: InviteInput,
): Promise<Invitation> {
  requireUserManager(p, s.catalogue, 'invite users');
  const email = input.email.trim();
  if (!EMAIL.test(email))
    throw new InvalidInput('invalid_email', `"${input.email}" is not an email address`, {
      fields: [{ path: 'body.email', message: 'is not an email address' }],
    });
  assertMayAssignRole(p, input.role);
  const crmAccess = input.role === 'admin' ? true : (input.crmAccess ?? false);
  if (input.role === 'admin' && input.crmAccess === false) {
    throw new Unprocessable('crm_always_on_for_admins', 'admins always have CRM access; it cannot be turned off');
  }
  assertMayGrantCrm(p, crmAccess);
  const areas = input.areas ?? {};
  return s.db.tx(async (trx) => {
    const template = input.templateId ? await templateFor(trx, ctx.tenantId, input.templateId) : null;
    checkInheritance(s.catalogue, areas, wouldHold(s.catalogue, {}, template));
    assertWithinOwn(p, wouldHold(s.catalogue, areas, template));
    if (await findUserByEmail(trx, ctx.tenantId, email))
      throw new Conflict('email_taken', `${email} already belongs to a user of this tenant`);
    await takeSeat(trx, ctx.tenantId);
    const now = ctx.now.getTime();
    const user = await insertUser(
      trx,
      ctx.tenantId,
      {
        doc: { userName: email, emails: [{ value: email, type: 'work', primary: true }], active: true },
        source: 'invite',
        status: 'invited',
        role: input.role,
        templateId: template?.id ?? null,
        crmAccess,
      },
      now,
    ).catch((err: unknown) => {
      if (err instanceof Conflict)
        throw new Conflict('email_taken', `${email} already belongs to a user of this tenant`, { cause: err });
      throw err;
    });
    await putOwnSettings(trx, ctx.tenantId, user.id, areas, now);
    const expiresAt = await issueInvitationMail(trx, s, ctx, user, now);
    await recordEvent(trx, ctx, {
      event: 'user.invited',
      entity: entity(user),
      before: null,
      after: { email, role: user.role, templateId: user.templateId, crmAccess, areas },
    });
    return { user, expiresAt };
  });
}

async function templateFor(trx: Knex, tenantId: string, id: string) {
  try {
    return await requireTemplate(trx, tenantId, id);
  } catch (err) {
    if (err instanceof NotFound)
      throw new Unprocessable('unknown_template', `no role template with id "${id}"`, {
        fields: [{ path: 'body.templateId', message: 'is not a role template of this tenant' }],
      });
    throw err;
  }
}

/** A fresh link for a pending invitation; the previous one stops working. */
export async function resendInvitation(
  s: InvitationSettings,
  ctx: Ctx,
  p: Principal,
  userId: string,
): Promise<Invitation> {
  requireUserManager(p, s.catalogue, 'resend invitations');
  return s.db.tx(async (trx) => {
    const user = await lockUser(trx, ctx.tenantId, userId, ctx.now.getTime());
    // A new link voids the old one: a member may not do that to an invited admin.
    assertMayChangeUser(p, s.catalogue, user, 'resend the invitation');
    if (user.status !== 'invited')
      throw new Conflict('not_invited', `${user.email ?? user.userName} is ${user.status}, not invited`);
    const expiresAt = await issueInvitationMail(trx, s, ctx, user, ctx.now.getTime());
    await recordEvent(trx, ctx, {
      event: 'user.invitation_resent',
      entity: entity(user),
      before: null,
      after: { expiresAt: new Date(expiresAt).toISOString() },
    });
    return { user, expiresAt };
  });
}

export interface PendingInvitation {
  user: User;
  tenantName: string;
  expiresAt: number;
}

async function findInvitation(
  trx: Knex,
  token: string,
  now: number,
): Promise<PendingInvitation & { tenantId: string }> {
  const row = await trx('invitations')
    .where({ token_hash: hashToken(token) })
    .first();
  if (!row)
    throw new NotFound('invitation_not_found', 'this invitation link is unknown or was replaced by a newer one');
  const tenantId = String(row.tenant_id);
  if (Number(row.expires_at) <= now) {
    throw new InvalidInput(
      'invitation_expired',
      'this invitation link has expired; ask an admin to resend the invitation',
    );
  }
  const user = await requireUser(trx, tenantId, String(row.user_id));
  return { tenantId, user, tenantName: (await getTenant(trx, tenantId)).name, expiresAt: Number(row.expires_at) };
}

/** What the invitation page shows before the person accepts. */
export function lookUpInvitation(db: Db, token: string, now = Date.now()): Promise<PendingInvitation> {
  return findInvitation(db.knex, token, now);
}

/**
 * Accepts an invitation by its token (the accept endpoint) or for a user who just signed in:
 * the user becomes active and the invitation is used up.
 */
export async function acceptInvitation(db: Db, token: string, requestId: string, now = new Date()): Promise<User> {
  return db.tx(async (trx) => {
    const found = await findInvitation(trx, token, now.getTime());
    return activateInvited(
      trx,
      {
        tenantId: found.tenantId,
        actor: { type: 'user', id: found.user.id, display: found.user.email ?? found.user.userName },
        requestId,
        now,
      },
      found.user.id,
      'link',
    );
  });
}

export async function activateInvited(trx: Knex, ctx: Ctx, userId: string, via: 'link' | 'sign_in'): Promise<User> {
  const locked = await lockUser(trx, ctx.tenantId, userId, ctx.now.getTime());
  if (locked.status !== 'invited') throw new Conflict('not_invited', 'this invitation was already accepted');
  const user = await writeAccountFields(trx, locked, { status: 'active' });
  await trx('invitations').where({ tenant_id: ctx.tenantId, user_id: userId }).delete();
  await recordEvent(trx, ctx, {
    event: 'user.invitation_accepted',
    entity: entity(user),
    before: { status: 'invited' },
    after: { status: 'active', via },
  });
  return user;
}
