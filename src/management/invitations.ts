import type { AppDeps } from '../http/deps.js';
import { parseSettings } from '../access/levels.js';
import { seatsOf } from '../tenants/seats.js';
import {
  acceptInvitation,
  inviteUser,
  resendInvitation,
  type Invitation,
  type InvitationSettings,
} from '../provisioning/invitations.js';
import type { Api, JsonSchema } from './api.js';
import { presentUser } from './users.js';

export function invitationSettings(deps: AppDeps): InvitationSettings {
  return {
    db: deps.db,
    catalogue: deps.catalogue,
    publicBaseUrl: deps.config.publicBaseUrl,
    inviteTtlMs: deps.config.inviteTtlMs,
  };
}

export function registerInvitations(api: Api, deps: AppDeps, user: JsonSchema): void {
  const settings = invitationSettings(deps);
  const seats = { $ref: '#/components/schemas/Seats' };
  const invitation = api.schema('Invitation', {
    type: 'object',
    required: ['user', 'invitation', 'seats'],
    properties: {
      user,
      invitation: {
        type: 'object',
        required: ['expiresAt'],
        properties: { expiresAt: { type: 'string', format: 'date-time' } },
      },
      seats,
    },
  });
  const present = async (tenantId: string, inv: Invitation) => ({
    user: presentUser(inv.user),
    invitation: { expiresAt: new Date(inv.expiresAt).toISOString() },
    seats: await seatsOf(deps.db.knex, tenantId),
  });

  api.add({
    method: 'post',
    path: '/invitations',
    operationId: 'inviteUser',
    summary: 'Invite a person: an invited user holding a seat, and an invitation mail',
    description:
      'At the user limit the answer is 403 `seat_limit_reached`; an email that already belongs to a user is 409.',
    tag: 'Users',
    body: {
      type: 'object',
      required: ['email', 'role'],
      additionalProperties: false,
      properties: {
        email: { type: 'string', minLength: 3, maxLength: 320 },
        role: { enum: ['admin', 'member'] },
        templateId: { type: ['string', 'null'], maxLength: 36 },
        crmAccess: { type: 'boolean' },
        permissions: {
          description: 'Area settings: `{areas:{…}}` as in PUT /users/{id}/permissions',
          type: 'object',
          required: ['areas'],
          additionalProperties: false,
          properties: { areas: { $ref: '#/components/schemas/AreaSettings' } },
        },
      },
    },
    responses: { 201: { description: 'Invited', schema: invitation } },
    handler: async (req, res, { body }) => {
      const b = body as {
        email: string;
        role: 'admin' | 'member';
        templateId?: string | null;
        crmAccess?: boolean;
        permissions?: { areas: unknown };
      };
      const areas = b.permissions
        ? parseSettings(deps.catalogue, b.permissions.areas, 'body.permissions.areas')
        : undefined;
      const inv = await inviteUser(settings, req.ctx!, req.principal!, {
        email: b.email,
        role: b.role,
        templateId: b.templateId,
        crmAccess: b.crmAccess,
        areas,
      });
      deps.mailer.kick();
      res
        .status(201)
        .location(`${deps.config.publicBaseUrl}/api/v1/users/${inv.user.id}`)
        .json(await present(req.ctx!.tenantId, inv));
    },
  });

  api.add({
    method: 'post',
    path: '/invitations/{userId}/resend',
    operationId: 'resendInvitation',
    summary: 'Send a fresh invitation link; the previous link stops working',
    tag: 'Users',
    responses: { 200: { description: 'Sent', schema: invitation } },
    handler: async (req, res, { params }) => {
      const inv = await resendInvitation(settings, req.ctx!, req.principal!, params.userId!);
      deps.mailer.kick();
      res.json(await present(req.ctx!.tenantId, inv));
    },
  });

  api.add({
    method: 'post',
    path: '/invitations/accept',
    operationId: 'acceptInvitation',
    summary: 'Accept an invitation with the token from its link; the user becomes active',
    description:
      'Needs no API key: the invitation token is the credential. Unknown or replaced tokens are 404, expired ones 400.',
    tag: 'Users',
    body: {
      type: 'object',
      required: ['token'],
      additionalProperties: false,
      properties: { token: { type: 'string', minLength: 1, maxLength: 200 } },
    },
    responses: {
      200: { description: 'Accepted', schema: { type: 'object', required: ['user'], properties: { user } } },
    },
    handler: async (req, res, { body }) => {
      const u = await acceptInvitation(deps.db, (body as { token: string }).token, req.id);
      res.json({ user: presentUser(u) });
    },
  });
}
