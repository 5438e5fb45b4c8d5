import { IANAZone } from 'luxon';
import type { AppDeps } from '../http/deps.js';
import { requireAdmin } from '../access/principal.js';
import { Forbidden, InvalidInput } from '../errors.js';
import { updateTenantSettings, type TenantChange } from '../provisioning/tenants.js';
import { seatsOf, type Seats } from '../tenants/seats.js';
import type { Tenant } from '../tenants/store.js';
import type { Api } from './api.js';
import type { commonSchemas } from './schemas.js';

/** The caller's tenant as the management API shows it, with its seat use. */
export function presentTenant(t: Tenant, seats: Seats) {
  return {
    id: t.id,
    slug: t.slug,
    name: t.name,
    timeZone: t.timeZone,
    jitProvisioning: t.jitProvisioning,
    userLimit: t.userLimit,
    seats,
    createdAt: new Date(t.createdAt).toISOString(),
  };
}

export function registerTenant(api: Api, deps: AppDeps, common: ReturnType<typeof commonSchemas>): void {
  const seats = api.schema('Seats', {
    type: 'object',
    required: ['used', 'limit'],
    description: 'Invited, active and suspended users each hold a seat; a null limit means no limit',
    properties: { used: { type: 'integer', minimum: 0 }, limit: { type: ['integer', 'null'], minimum: 0 } },
  });
  const tenant = api.schema('Tenant', {
    type: 'object',
    required: ['id', 'slug', 'name', 'timeZone', 'jitProvisioning', 'userLimit', 'seats', 'createdAt'],
    properties: {
      id: common.id,
      slug: { type: 'string' },
      name: { type: 'string' },
      timeZone: { type: 'string' },
      jitProvisioning: { type: 'boolean' },
      userLimit: {
        type: ['integer', 'null'],
        description: "The plan's user limit, set by the operator (null: none); the same as seats.limit",
      },
      seats,
      createdAt: common.timestamp,
    },
  });
  api.add({
    method: 'get',
    path: '/tenant',
    operationId: 'getTenant',
    summary: "The caller's tenant and its seat use",
    tag: 'Tenant',
    responses: { 200: { description: 'The tenant', schema: tenant } },
    handler: async (req, res) => {
      const t = req.auth!.tenant;
      res.json(presentTenant(t, await seatsOf(deps.db.knex, t.id)));
    },
  });
  api.add({
    method: 'patch',
    path: '/tenant',
    operationId: 'updateTenant',
    summary: "Change the tenant's just-in-time provisioning or time zone",
    description:
      "jitProvisioning lets people unknown to Roster sign in through SSO and become members with no area permissions (a seat each). The user limit is the operator's (a plan limit, `roster tenant update <slug> --user-limit N|none`): a body with userLimit is refused (403) and changes nothing.",
    tag: 'Tenant',
    body: {
      type: 'object',
      additionalProperties: false,
      minProperties: 1,
      properties: {
        jitProvisioning: { type: 'boolean' },
        timeZone: {
          type: 'string',
          minLength: 1,
          maxLength: 64,
          description: 'An IANA time zone, e.g. Europe/Paris: the default of dated grants',
        },
        userLimit: { type: ['integer', 'null'], description: "Refused (403): the user limit is the operator's to set" },
      },
    },
    responses: { 200: { description: 'The tenant after the change', schema: tenant } },
    handler: async (req, res, { body }) => {
      requireAdmin(req.principal!, 'change tenant settings');
      if ((body as { userLimit?: unknown }).userLimit !== undefined) {
        throw new Forbidden(
          'operator_setting',
          'userLimit is set by the operator of Roster (your plan): remove unused users or upgrade your plan to add more users',
          {
            fields: [{ path: 'body.userLimit', message: "is the operator's to set" }],
          },
        );
      }
      const change = body as TenantChange;
      if (change.timeZone !== undefined && !IANAZone.isValidZone(change.timeZone)) {
        throw new InvalidInput('invalid_time_zone', `"${change.timeZone}" is not an IANA time zone`, {
          fields: [{ path: 'body.timeZone', message: 'is not an IANA time zone' }],
        });
      }
      const result = await updateTenantSettings(deps.db, req.ctx!, change);
      res.json(presentTenant(result, await seatsOf(deps.db.knex, result.id)));
    },
  });
  const area: Record<string, unknown> = {
    type: 'object',
    required: ['key', 'label', 'actions', 'children'],
    properties: {
      key: { type: 'string' },
      label: { type: 'string' },
      description: { type: 'string' },
      actions: { type: 'array', items: { enum: ['view', 'create', 'edit', 'delete', 'manage'] } },
      children: { type: 'array', items: { $ref: '#/components/schemas/Area' } },
    },
  };
  const areaRef = api.schema('Area', area);
  api.add({
    method: 'get',
    path: '/areas',
    operationId: 'listAreas',
    summary: 'The area catalogue: the tree of areas permissions are set on',
    tag: 'Permissions',
    responses: { 200: { description: 'The catalogue', schema: { type: 'array', items: areaRef } } },
    handler: (_req, res) => void res.json(deps.catalogue),
  });
}
