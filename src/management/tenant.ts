import type { AppDeps } from '../app.js';
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
      userLimit: { type: ['integer', 'null'] },
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
