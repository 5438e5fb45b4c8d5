import type { AppDeps } from '../http/deps.js';
import { assertMayReadUser } from '../access/policies.js';
import { requireUserManager } from '../access/principal.js';
import { listTemplates } from '../access/templates.js';
import { requireUser, type User } from '../directory/users.js';
import { listUsers, type UserListQuery } from '../directory/user-list.js';
import { changeAccount, deleteAccount, type AccountChange } from '../provisioning/accounts.js';
import type { Api, JsonSchema } from './api.js';
import { pageOf, pageQuery, type commonSchemas } from './schemas.js';

/** A user as the management API shows it (seed 003's table); never a raw row. */
export function presentUser(u: User, templateNames?: Map<string, string>) {
  return {
    id: u.id,
    email: u.email,
    userName: u.userName,
    displayName: u.displayName,
    role: u.role,
    status: u.status,
    templateId: u.templateId,
    ...(templateNames ? { templateName: u.templateId ? (templateNames.get(u.templateId) ?? null) : null } : {}),
    crmAccess: u.crmAccess,
    source: u.source,
    lastLoginAt: u.lastLoginAt === null ? null : new Date(u.lastLoginAt).toISOString(),
    createdAt: new Date(u.createdAt).toISOString(),
    updatedAt: new Date(u.updatedAt).toISOString(),
  };
}

export function userSchema(api: Api, common: ReturnType<typeof commonSchemas>): JsonSchema {
  return api.schema('User', {
    type: 'object',
    required: [
      'id',
      'email',
      'userName',
      'role',
      'status',
      'templateId',
      'crmAccess',
      'source',
      'lastLoginAt',
      'createdAt',
      'updatedAt',
    ],
    properties: {
      id: common.id,
      email: { type: ['string', 'null'] },
      userName: { type: 'string' },
      displayName: { type: ['string', 'null'] },
      role: { enum: ['admin', 'member'] },
      status: { enum: ['invited', 'active', 'suspended'] },
      templateId: { type: ['string', 'null'] },
      templateName: { type: ['string', 'null'] },
      crmAccess: { type: 'boolean', description: 'Always true for admins' },
      source: { enum: ['scim', 'invite', 'jit'] },
      lastLoginAt: { type: ['string', 'null'], format: 'date-time' },
      createdAt: common.timestamp,
      updatedAt: common.timestamp,
    },
  });
}

export function registerUsers(api: Api, deps: AppDeps, user: JsonSchema): void {
  const knex = deps.db.knex;
  const names = async (tenantId: string) => new Map((await listTemplates(knex, tenantId)).map((t) => [t.id, t.name]));

  api.add({
    method: 'get',
    path: '/users',
    operationId: 'listUsers',
    summary: "The tenant's users, filtered and sorted, one page at a time",
    tag: 'Users',
    query: {
      properties: {
        email: { type: 'string', maxLength: 320, description: 'Exact match, case-insensitive' },
        status: { enum: ['invited', 'active', 'suspended'] },
        role: { enum: ['admin', 'member'] },
        templateId: { type: 'string', maxLength: 36 },
        source: { enum: ['scim', 'invite', 'jit'] },
        sort: { enum: ['createdAt', 'email', 'lastLoginAt'], default: 'createdAt' },
        order: { enum: ['asc', 'desc'], default: 'asc' },
        ...pageQuery,
      },
    },
    responses: { 200: { description: 'A page of users', schema: pageOf(user) } },
    handler: async (req, res, { query }) => {
      requireUserManager(req.principal!, deps.catalogue, 'list users');
      const page = await listUsers(knex, req.ctx!.tenantId, query as UserListQuery);
      const n = await names(req.ctx!.tenantId);
      res.json({ items: page.users.map((u) => presentUser(u, n)), nextCursor: page.nextCursor });
    },
  });

  api.add({
    method: 'get',
    path: '/users/{id}',
    operationId: 'getUser',
    summary: 'One user',
    tag: 'Users',
    responses: { 200: { description: 'The user', schema: user } },
    handler: async (req, res, { params }) => {
      assertMayReadUser(req.principal!, deps.catalogue, params.id!);
      res.json(presentUser(await requireUser(knex, req.ctx!.tenantId, params.id!), await names(req.ctx!.tenantId)));
    },
  });

  api.add({
    method: 'patch',
    path: '/users/{id}',
    operationId: 'updateUser',
    summary: 'Change role, status, role template, CRM access or email',
    description:
      'Suspension takes effect on the next request. The last active admin cannot be demoted or suspended (409). CRM access is always on for admins.',
    tag: 'Users',
    body: {
      type: 'object',
      additionalProperties: false,
      minProperties: 1,
      properties: {
        role: { enum: ['admin', 'member'] },
        status: { enum: ['active', 'suspended'] },
        templateId: { type: ['string', 'null'], maxLength: 36 },
        crmAccess: { type: 'boolean' },
        email: {
          type: 'string',
          minLength: 3,
          maxLength: 320,
          description:
            'Admins only (403 admin_required): the email decides who signs in as the user; the change ends their sessions',
        },
      },
    },
    responses: { 200: { description: 'The user after the change', schema: user } },
    handler: async (req, res, { params, body }) => {
      const u = await changeAccount(
        deps.db,
        deps.catalogue,
        req.ctx!,
        req.principal!,
        params.id!,
        body as AccountChange,
      );
      res.json(presentUser(u, await names(req.ctx!.tenantId)));
    },
  });

  api.add({
    method: 'delete',
    path: '/users/{id}',
    operationId: 'deleteUser',
    summary: 'Delete a user permanently',
    description:
      "Frees the seat and revokes the user's own API keys; audit events stay, attributed to the deleted user.",
    tag: 'Users',
    responses: { 204: { description: 'Deleted' } },
    handler: async (req, res, { params }) => {
      await deleteAccount(deps.db, deps.catalogue, req.ctx!, req.principal!, params.id!);
      res.status(204).end();
    },
  });
}
