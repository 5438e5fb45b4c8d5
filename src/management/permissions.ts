import type { AppDeps } from '../http/deps.js';
import type { Action } from '../access/catalogue.js';
import { checkArea, effectivePermissions, type EffectiveTree } from '../access/effective.js';
import { indexCatalogue, parseSettings } from '../access/levels.js';
import { assertMayReadUser } from '../access/policies.js';
import { canManageUsers } from '../access/principal.js';
import { effectiveOf, loadSubject, type Subject } from '../access/subject.js';
import { InvalidInput, NotFound, Forbidden } from '../errors.js';
import { setOwnPermissions } from '../provisioning/accounts.js';
import type { Api, JsonSchema } from './api.js';

const ACTIONS = ['view', 'create', 'edit', 'delete', 'manage'];

/** A level or an explicit action list, as set on one area. */
export const settingSchema: JsonSchema = {
  // Loose on purpose: the domain check lists every bad area of a request at once, with messages
  // that name the area; a strict schema here would stop at the first and say less.
  type: ['string', 'array'],
  maxLength: 16,
  items: { type: 'string', maxLength: 16 },
  description: `A level (none, read, edit, manage where the area has it) or a list of actions (${ACTIONS.join(', ')})`,
};

export const areasSchema: JsonSchema = {
  type: 'object',
  description: 'Area key → level (none, read, edit, manage where the area has it) or a list of actions',
  additionalProperties: settingSchema,
};

function presentPermissions(s: Subject, tree: EffectiveTree) {
  return {
    own: s.own,
    template: s.template ? { id: s.template.id, name: s.template.name } : null,
    effective: tree,
  };
}

export function registerPermissions(api: Api, deps: AppDeps): void {
  const knex = deps.db.knex;
  const effectiveArea = api.schema('EffectiveArea', {
    type: 'object',
    required: ['level', 'actions', 'reason'],
    properties: {
      level: { enum: ['none', 'read', 'edit', 'manage'] },
      actions: { type: 'array', items: { enum: ACTIONS } },
      reason: { type: 'string' },
    },
  });
  const areas = api.schema('AreaSettings', areasSchema);
  const permissions = api.schema('UserPermissions', {
    type: 'object',
    required: ['own', 'template', 'effective'],
    properties: {
      own: areas,
      template: {
        oneOf: [
          { type: 'null' },
          {
            type: 'object',
            required: ['id', 'name'],
            properties: { id: { type: 'string' }, name: { type: 'string' } },
          },
        ],
      },
      effective: { type: 'object', additionalProperties: effectiveArea, description: 'Every area of the catalogue' },
    },
  });

  const load = async (tenantId: string, id: string) => {
    const s = await loadSubject(knex, tenantId, id);
    if (!s) throw new NotFound('user_not_found', `no user with id "${id}"`);
    return s;
  };

  api.add({
    method: 'get',
    path: '/users/{id}/permissions',
    operationId: 'getUserPermissions',
    summary: "A user's own area settings and the effective level and actions of every area, with reasons",
    tag: 'Permissions',
    responses: { 200: { description: 'Own settings and the effective tree', schema: permissions } },
    handler: async (req, res, { params }) => {
      assertMayReadUser(req.principal!, deps.catalogue, params.id!);
      const s = await load(req.ctx!.tenantId, params.id!);
      res.json(presentPermissions(s, effectiveOf(deps.catalogue, s)));
    },
  });

  api.add({
    method: 'put',
    path: '/users/{id}/permissions',
    operationId: 'setUserPermissions',
    summary: "Replace a user's own area settings",
    description:
      'A sub-section may be more restrictive than its parent, never less: such a write is refused (422) naming the parent. A member managing users cannot grant beyond their own permissions (403).',
    tag: 'Permissions',
    body: { type: 'object', required: ['areas'], additionalProperties: false, properties: { areas } },
    responses: { 200: { description: 'Own settings and the effective tree after the change', schema: permissions } },
    handler: async (req, res, { params, body }) => {
      const parsed = parseSettings(deps.catalogue, (body as { areas: unknown }).areas, 'body.areas');
      await setOwnPermissions(deps.db, deps.catalogue, req.ctx!, req.principal!, params.id!, parsed);
      const s = await load(req.ctx!.tenantId, params.id!);
      res.json(presentPermissions(s, effectiveOf(deps.catalogue, s)));
    },
  });

  const check = {
    type: 'object',
    required: ['userId', 'area', 'action'],
    additionalProperties: false,
    properties: {
      userId: { type: 'string', maxLength: 36 },
      area: { type: 'string', maxLength: 300 },
      action: { enum: ACTIONS },
    },
  };
  const result = api.schema('AreaCheckResult', {
    type: 'object',
    required: ['userId', 'area', 'action', 'allowed', 'reason'],
    properties: {
      userId: { type: 'string' },
      area: { type: 'string' },
      action: { enum: ACTIONS },
      allowed: { type: 'boolean' },
      reason: { type: 'string' },
    },
  });
  api.add({
    method: 'post',
    path: '/access/area-checks',
    operationId: 'checkAreas',
    summary: 'May these users do these actions on these areas? Each answer says why',
    description:
      'Send one check `{userId, area, action}` for one result, or `{checks:[…]}` (up to 1,000) for `{results:[…]}` in the same order.',
    tag: 'Permissions',
    body: {
      oneOf: [
        check,
        {
          type: 'object',
          required: ['checks'],
          additionalProperties: false,
          properties: { checks: { type: 'array', minItems: 1, maxItems: 1000, items: check } },
        },
      ],
    },
    responses: {
      200: {
        description: 'The answers',
        schema: {
          oneOf: [
            result,
            { type: 'object', required: ['results'], properties: { results: { type: 'array', items: result } } },
          ],
        },
      },
    },
    handler: async (req, res, { body }) => {
      const b = body as {
        checks?: { userId: string; area: string; action: Action }[];
        userId?: string;
        area?: string;
        action?: Action;
      };
      const checks = b.checks ?? [{ userId: b.userId!, area: b.area!, action: b.action! }];
      const p = req.principal!;
      const index = indexCatalogue(deps.catalogue);
      const unknown = checks.map((c, i) => ({ c, i })).filter(({ c }) => !index.has(c.area));
      if (unknown.length) {
        throw new InvalidInput('unknown_area', `unknown area ${unknown.map(({ c }) => `"${c.area}"`).join(', ')}`, {
          fields: unknown.map(({ c, i }) => ({
            path: b.checks ? `body.checks.${i}.area` : 'body.area',
            message: `unknown area "${c.area}"`,
          })),
        });
      }
      if (!canManageUsers(p, deps.catalogue) && checks.some((c) => p.kind !== 'user' || c.userId !== p.user.id)) {
        throw new Forbidden('not_allowed', 'you may check only your own permissions');
      }
      const trees = new Map<string, EffectiveTree>();
      for (const userId of new Set(checks.map((c) => c.userId))) {
        const s = await loadSubject(knex, req.ctx!.tenantId, userId);
        trees.set(
          userId,
          s
            ? effectiveOf(deps.catalogue, s)
            : effectivePermissions(deps.catalogue, { role: 'member', status: 'deleted', own: {} }),
        );
      }
      const results = checks.map((c) => ({ ...c, ...checkArea(trees.get(c.userId)!, c.area, c.action) }));
      res.json(b.checks ? { results } : results[0]);
    },
  });
}
