import type { AppDeps } from '../http/deps.js';
import { parseSettings } from '../access/levels.js';
import { requireUserManager } from '../access/principal.js';
import { listTemplates, requireTemplate, type RoleTemplate } from '../access/templates.js';
import { createTemplate, deleteTemplate, updateTemplate } from '../provisioning/role-templates.js';
import type { Api, JsonSchema } from './api.js';
import type { commonSchemas } from './schemas.js';

export function presentTemplate(t: RoleTemplate, usersCount?: number) {
  return {
    id: t.id,
    name: t.name,
    areas: t.areas,
    builtin: t.builtin,
    ...(usersCount === undefined ? {} : { usersCount }),
    createdAt: new Date(t.createdAt).toISOString(),
    updatedAt: new Date(t.updatedAt).toISOString(),
  };
}

export function registerRoleTemplates(api: Api, deps: AppDeps, common: ReturnType<typeof commonSchemas>): void {
  const knex = deps.db.knex;
  const areas = { $ref: '#/components/schemas/AreaSettings' };
  const template = api.schema('RoleTemplate', {
    type: 'object',
    required: ['id', 'name', 'areas', 'builtin', 'createdAt', 'updatedAt'],
    properties: {
      id: common.id,
      name: { type: 'string' },
      areas,
      builtin: {
        type: 'boolean',
        description: "Seeded from seed 002's common configurations; editable and deletable like any other",
      },
      usersCount: { type: 'integer', minimum: 0 },
      createdAt: common.timestamp,
      updatedAt: common.timestamp,
    },
  });
  const input: JsonSchema = {
    type: 'object',
    required: ['name', 'areas'],
    additionalProperties: false,
    properties: { name: { type: 'string', minLength: 1, maxLength: 200 }, areas },
  };
  const parse = (body: unknown) => {
    const b = body as { name: string; areas: unknown };
    return { name: b.name, areas: parseSettings(deps.catalogue, b.areas, 'body.areas') };
  };
  const counts = async (tenantId: string) =>
    new Map(
      (
        (await knex('users')
          .where({ tenant_id: tenantId })
          .whereNotNull('template_id')
          .groupBy('template_id')
          .select('template_id')
          .count({ n: '*' })) as Record<string, unknown>[]
      ).map((r) => [String(r.template_id), Number(r.n)]),
    );

  api.add({
    method: 'get',
    path: '/role-templates',
    operationId: 'listRoleTemplates',
    summary: 'Role templates, with how many users reference each',
    tag: 'Role templates',
    responses: {
      200: {
        description: 'Every template of the tenant',
        schema: { type: 'object', required: ['items'], properties: { items: { type: 'array', items: template } } },
      },
    },
    handler: async (req, res) => {
      const n = await counts(req.ctx!.tenantId);
      res.json({
        items: (await listTemplates(knex, req.ctx!.tenantId)).map((t) => presentTemplate(t, n.get(t.id) ?? 0)),
      });
    },
  });
  api.add({
    method: 'post',
    path: '/role-templates',
    operationId: 'createRoleTemplate',
    summary: 'Create a role template',
    tag: 'Role templates',
    body: input,
    responses: { 201: { description: 'Created', schema: template } },
    handler: async (req, res, { body }) => {
      const t = await createTemplate(deps.db, deps.catalogue, req.ctx!, req.principal!, parse(body));
      res
        .status(201)
        .location(`${deps.config.publicBaseUrl}/api/v1/role-templates/${t.id}`)
        .json(presentTemplate(t, 0));
    },
  });
  api.add({
    method: 'get',
    path: '/role-templates/{id}',
    operationId: 'getRoleTemplate',
    summary: 'One role template',
    tag: 'Role templates',
    responses: { 200: { description: 'The template', schema: template } },
    handler: async (req, res, { params }) => {
      const t = await requireTemplate(knex, req.ctx!.tenantId, params.id!);
      res.json(presentTemplate(t, (await counts(req.ctx!.tenantId)).get(t.id) ?? 0));
    },
  });
  api.add({
    method: 'put',
    path: '/role-templates/{id}',
    operationId: 'updateRoleTemplate',
    summary: 'Replace a role template; every user referencing it has the new permissions at their next request',
    tag: 'Role templates',
    body: input,
    responses: { 200: { description: 'The template after the change', schema: template } },
    handler: async (req, res, { params, body }) => {
      const t = await updateTemplate(deps.db, deps.catalogue, req.ctx!, req.principal!, params.id!, parse(body));
      res.json(presentTemplate(t, (await counts(req.ctx!.tenantId)).get(t.id) ?? 0));
    },
  });
  api.add({
    method: 'delete',
    path: '/role-templates/{id}',
    operationId: 'deleteRoleTemplate',
    summary: 'Delete a role template',
    description:
      "While users reference the template the answer is 409 with their number (`usersCount`) and the first 20 of them by id (`users`), unless `reassign=<templateId>` moves them to another template or `detach=true` copies the template's settings onto each.",
    tag: 'Role templates',
    query: { properties: { reassign: { type: 'string', maxLength: 36 }, detach: { type: 'boolean' } } },
    responses: { 204: { description: 'Deleted' } },
    handler: async (req, res, { params, query }) => {
      requireUserManager(req.principal!, deps.catalogue, 'manage role templates');
      await deleteTemplate(
        deps.db,
        deps.catalogue,
        req.ctx!,
        req.principal!,
        params.id!,
        query as { reassign?: string; detach?: boolean },
      );
      res.status(204).end();
    },
  });
}
