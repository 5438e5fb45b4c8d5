import type { Request } from 'express';
import type { AppDeps } from '../http/deps.js';
import {
  listGroupMembers,
  listLocalGroups,
  memberCounts,
  membershipAuthority,
  requireLocalGroup,
  type GroupChange,
  type GroupInput,
  type GroupListQuery,
  type LocalGroup,
  type MemberRole,
} from '../access/local-groups.js';
import { requireUserManager } from '../access/principal.js';
import { Forbidden } from '../errors.js';
import {
  MAX_MEMBERS_PER_REQUEST,
  addGroupMembers,
  removeGroupMember,
  removeGroupMembers,
  type MemberSelection,
} from '../provisioning/group-members.js';
import { createGroup, deleteGroup, updateGroup } from '../provisioning/groups.js';
import type { Api, JsonSchema } from './api.js';
import { pageOf, pageQuery, type commonSchemas } from './schemas.js';

/** A local group as the API shows it. */
export function presentGroup(g: LocalGroup, memberCount: number) {
  return {
    id: g.id,
    name: g.name,
    description: g.description,
    status: g.status,
    parentId: g.parentId,
    memberCount,
    createdAt: new Date(g.createdAt).toISOString(),
    updatedAt: new Date(g.updatedAt).toISOString(),
  };
}

const WHO_MANAGES =
  "Admins and members holding `manage` on the user-management area (`account.users`) manage every group. Adding members, making managers, moving a group under a parent (or creating it there) and reactivating an archived group hand on every agent grant and data-source restriction of the group and its ancestors: only callers who could grant those directly (admins) may do that where there are any; others get 403 `beyond_own_permissions` naming the agents. A group's managers (any membership row with role `manager`, manual or rule-derived) may read their group and add and remove its members, and nothing more: they cannot make anyone a manager, change or remove a manager, rename, move, archive or delete the group, or touch grants. An archived group's managers have no powers over it.";

export function registerGroups(api: Api, deps: AppDeps, common: ReturnType<typeof commonSchemas>): void {
  const knex = deps.db.knex;
  const tag = 'Groups';
  const group = api.schema('LocalGroup', {
    type: 'object',
    required: ['id', 'name', 'description', 'status', 'parentId', 'memberCount', 'createdAt', 'updatedAt'],
    properties: {
      id: common.id,
      name: { type: 'string' },
      description: { type: ['string', 'null'] },
      status: {
        enum: ['active', 'archived'],
        description: "An archived group's grants and data-source rights do not apply",
      },
      parentId: {
        type: ['string', 'null'],
        description: 'Members of this group inherit the grants of the parent and its ancestors',
      },
      memberCount: {
        type: 'integer',
        minimum: 0,
        description: 'Distinct users with a manual or rule-derived membership',
      },
      createdAt: common.timestamp,
      updatedAt: common.timestamp,
    },
  });
  const role = { enum: ['member', 'manager'] };
  const person = { userId: common.id, email: { type: ['string', 'null'] } };
  const member = api.schema('LocalGroupMember', {
    type: 'object',
    required: ['userId', 'email', 'displayName', 'status', 'role', 'source', 'memberships'],
    properties: {
      ...person,
      displayName: { type: ['string', 'null'] },
      status: { enum: ['invited', 'active', 'suspended'] },
      role: { ...role, description: 'manager if any of the memberships says manager' },
      source: {
        enum: ['manual', 'rule'],
        description: '`manual` when an admin added the user by hand (whatever rules also give), else `rule`',
      },
      memberships: {
        type: 'array',
        items: {
          type: 'object',
          required: ['source', 'role', 'ruleId', 'idpGroupId'],
          properties: {
            source: { enum: ['manual', 'rule'] },
            role,
            ruleId: { type: ['string', 'null'] },
            idpGroupId: { type: ['string', 'null'] },
          },
        },
      },
    },
  });
  const name = { type: 'string', minLength: 1, maxLength: 200 };
  const description = { type: ['string', 'null'], maxLength: 1000 };
  const selection = {
    userIds: {
      type: 'array',
      maxItems: MAX_MEMBERS_PER_REQUEST,
      items: { type: 'string', minLength: 1, maxLength: 36 },
    },
    emails: {
      type: 'array',
      maxItems: MAX_MEMBERS_PER_REQUEST,
      items: { type: 'string', minLength: 1, maxLength: 320 },
    },
  };
  const change = (extra: JsonSchema) => ({
    type: 'object',
    required: ['userId', 'email', 'role'],
    properties: { ...person, role, ...extra },
  });

  const readable = async (req: Request, id: string) => {
    const g = await requireLocalGroup(knex, req.ctx!.tenantId, id);
    if (!(await membershipAuthority(knex, deps.catalogue, req.principal!, g))) {
      throw new Forbidden('not_allowed', `only admins, user managers and managers of group "${g.name}" may read it`);
    }
    return g;
  };
  const present = async (tenantId: string, g: LocalGroup) =>
    presentGroup(g, (await memberCounts(knex, tenantId, [g.id])).get(g.id) ?? 0);
  const location = (id: string) => `${deps.config.publicBaseUrl}/api/v1/groups/${id}`;

  api.add({
    method: 'get',
    path: '/groups',
    operationId: 'listGroups',
    summary: 'Local groups by name, one page at a time',
    description: WHO_MANAGES,
    tag,
    query: {
      properties: {
        status: { enum: ['active', 'archived'] },
        parentId: { type: 'string', maxLength: 36, description: 'Direct children of this group' },
        topLevel: { type: 'boolean', description: 'true: groups without a parent; false: groups with one' },
        name: { type: 'string', minLength: 1, maxLength: 200, description: 'Name prefix, case-insensitive' },
        ...pageQuery,
      },
    },
    responses: { 200: { description: 'A page of groups', schema: pageOf(group) } },
    handler: async (req, res, { query }) => {
      requireUserManager(req.principal!, deps.catalogue, 'list groups');
      const tenantId = req.ctx!.tenantId;
      const page = await listLocalGroups(knex, tenantId, query as GroupListQuery);
      const counts = await memberCounts(
        knex,
        tenantId,
        page.groups.map((g) => g.id),
      );
      res.json({ items: page.groups.map((g) => presentGroup(g, counts.get(g.id) ?? 0)), nextCursor: page.nextCursor });
    },
  });

  api.add({
    method: 'post',
    path: '/groups',
    operationId: 'createGroup',
    summary: 'Create a local group, optionally under a parent',
    description: `Names are unique per tenant, case-insensitively (409). ${WHO_MANAGES}`,
    tag,
    body: {
      type: 'object',
      required: ['name'],
      additionalProperties: false,
      properties: { name, description, parentId: { type: ['string', 'null'], maxLength: 36 } },
    },
    responses: { 201: { description: 'Created', schema: group } },
    handler: async (req, res, { body }) => {
      const g = await createGroup(deps.db, deps.catalogue, req.ctx!, req.principal!, body as GroupInput);
      res.status(201).location(location(g.id)).json(presentGroup(g, 0));
    },
  });

  api.add({
    method: 'get',
    path: '/groups/{id}',
    operationId: 'getGroup',
    summary: 'One local group',
    tag,
    responses: { 200: { description: 'The group', schema: group } },
    handler: async (req, res, { params }) => {
      res.json(await present(req.ctx!.tenantId, await readable(req, params.id!)));
    },
  });

  api.add({
    method: 'patch',
    path: '/groups/{id}',
    operationId: 'updateGroup',
    summary: 'Rename, describe, move (parentId; null for top level) or archive a group',
    description:
      'A parent that would put the group inside its own subtree is refused (422, naming the cycle). Archiving keeps members and grants but they stop applying.',
    tag,
    body: {
      type: 'object',
      additionalProperties: false,
      minProperties: 1,
      properties: {
        name,
        description,
        parentId: { type: ['string', 'null'], maxLength: 36 },
        status: { enum: ['active', 'archived'] },
      },
    },
    responses: { 200: { description: 'The group after the change', schema: group } },
    handler: async (req, res, { params, body }) => {
      const g = await updateGroup(deps.db, deps.catalogue, req.ctx!, req.principal!, params.id!, body as GroupChange);
      res.json(await present(req.ctx!.tenantId, g));
    },
  });

  api.add({
    method: 'delete',
    path: '/groups/{id}',
    operationId: 'deleteGroup',
    summary: 'Delete a group with its memberships, its grants and its data-source restrictions',
    description:
      'Refused (409, `children` listed) while the group has child groups: move or delete them first. A data source restricted to this group alone stays restricted, to no one but admins.',
    tag,
    responses: { 204: { description: 'Deleted' } },
    handler: async (req, res, { params }) => {
      await deleteGroup(deps.db, deps.catalogue, req.ctx!, req.principal!, params.id!);
      res.status(204).end();
    },
  });

  api.add({
    method: 'get',
    path: '/groups/{id}/members',
    operationId: 'listGroupMembers',
    summary: "A group's members with their role and where the membership comes from",
    description:
      'One entry per user, ordered by user id. Direct members only: members of child groups are listed on the child.',
    tag,
    query: { properties: { ...pageQuery } },
    responses: { 200: { description: 'A page of members', schema: pageOf(member) } },
    handler: async (req, res, { params, query }) => {
      const g = await readable(req, params.id!);
      const page = await listGroupMembers(knex, req.ctx!.tenantId, g.id, query as { limit: number; cursor?: string });
      res.json({
        items: page.members.map(({ rows, ...m }) => ({ ...m, memberships: rows })),
        nextCursor: page.nextCursor,
      });
    },
  });

  api.add({
    method: 'post',
    path: '/groups/{id}/members',
    operationId: 'addGroupMembers',
    summary: `Add up to ${MAX_MEMBERS_PER_REQUEST} users by id or email, or change their role`,
    description: `Any unknown id or email fails the request (400, each listed) and nothing is applied. A user who is already a manual member gets \`role\` if given and keeps their role otherwise; new members join as \`role\` (default member). ${WHO_MANAGES}`,
    tag,
    body: { type: 'object', additionalProperties: false, properties: { ...selection, role } },
    responses: {
      200: {
        description: 'What changed, per user',
        schema: {
          type: 'object',
          required: ['added', 'updated', 'unchanged'],
          properties: {
            added: { type: 'array', items: change({}) },
            updated: { type: 'array', items: change({ previousRole: role }) },
            unchanged: { type: 'array', items: change({}) },
          },
        },
      },
    },
    handler: async (req, res, { params, body }) => {
      const out = await addGroupMembers(
        deps.db,
        deps.catalogue,
        req.ctx!,
        req.principal!,
        params.id!,
        body as MemberSelection & { role?: MemberRole },
      );
      const strip = <T extends { id: string }>({ id, ...rest }: T) => ({ userId: id, ...rest });
      res.json({ added: out.added.map(strip), updated: out.updated.map(strip), unchanged: out.unchanged.map(strip) });
    },
  });

  api.add({
    method: 'post',
    path: '/groups/{id}/members/remove',
    operationId: 'removeGroupMembers',
    summary: `Remove up to ${MAX_MEMBERS_PER_REQUEST} users by id or email`,
    description: `Removes manual memberships only: a membership a mapping rule gives stays (\`remainingRole\`), and a user who is a member through rules alone is reported in \`notRemoved\`. Any unknown id or email fails the request (400) and nothing is applied. ${WHO_MANAGES}`,
    tag,
    body: { type: 'object', additionalProperties: false, properties: selection },
    responses: {
      200: {
        description: 'What changed, per user',
        schema: {
          type: 'object',
          required: ['removed', 'notRemoved'],
          properties: {
            removed: {
              type: 'array',
              items: change({ remainingRole: { type: ['string', 'null'], enum: ['member', 'manager', null] } }),
            },
            notRemoved: {
              type: 'array',
              items: {
                type: 'object',
                required: ['userId', 'email', 'reason'],
                properties: { ...person, reason: { enum: ['not_a_member', 'rule_membership'] } },
              },
            },
          },
        },
      },
    },
    handler: async (req, res, { params, body }) => {
      const out = await removeGroupMembers(
        deps.db,
        deps.catalogue,
        req.ctx!,
        req.principal!,
        params.id!,
        body as MemberSelection,
      );
      res.json({
        removed: out.removed.map(({ id, ...rest }) => ({ userId: id, ...rest })),
        notRemoved: out.notRemoved.map(({ id, ...rest }) => ({ userId: id, ...rest })),
      });
    },
  });

  api.add({
    method: 'delete',
    path: '/groups/{id}/members/{userId}',
    operationId: 'removeGroupMember',
    summary: "Remove one user's manual membership",
    description: `404 \`not_a_member\` when the user is not a member; 409 \`rule_membership\` when only mapping rules make them one (change the rule or the IdP group). ${WHO_MANAGES}`,
    tag,
    responses: { 204: { description: 'Removed' } },
    handler: async (req, res, { params }) => {
      await removeGroupMember(deps.db, deps.catalogue, req.ctx!, req.principal!, params.id!, params.userId!);
      res.status(204).end();
    },
  });
}
