import type { AppDeps } from '../http/deps.js';
import { requireAdmin } from '../access/principal.js';
import { InvalidInput, Unprocessable } from '../errors.js';
import { createApiKey, presentKey, revokeApiKey } from '../provisioning/api-keys.js';
import { listTokens } from '../tenants/store.js';
import { parseDuration } from '../text/duration.js';
import type { Api } from './api.js';
import type { commonSchemas } from './schemas.js';

export function registerApiKeys(api: Api, deps: AppDeps, common: ReturnType<typeof commonSchemas>): void {
  const knex = deps.db.knex;
  const keyProps = {
    id: common.id,
    kind: { enum: ['admin', 'scim'] },
    name: { type: 'string' },
    hint: { type: 'string', description: 'The first characters of the secret' },
    userId: {
      type: ['string', 'null'],
      description: 'An admin key owned by a user acts as that user, with their permissions',
    },
    createdAt: common.timestamp,
    expiresAt: { type: ['string', 'null'], format: 'date-time' },
    lastUsedAt: { type: ['string', 'null'], format: 'date-time' },
    revokedAt: { type: ['string', 'null'], format: 'date-time' },
  };
  const required = ['id', 'kind', 'name', 'hint', 'userId', 'createdAt', 'expiresAt', 'lastUsedAt', 'revokedAt'];
  const key = api.schema('ApiKey', { type: 'object', required, properties: keyProps });
  const created = api.schema('CreatedApiKey', {
    type: 'object',
    required: [...required, 'token'],
    properties: { ...keyProps, token: { type: 'string', description: 'The secret, shown only in this response' } },
  });

  api.add({
    method: 'get',
    path: '/api-keys',
    operationId: 'listApiKeys',
    summary: 'Admin API keys and SCIM tokens of the tenant (never their secrets)',
    tag: 'API keys',
    responses: {
      200: {
        description: 'Every key',
        schema: { type: 'object', required: ['items'], properties: { items: { type: 'array', items: key } } },
      },
    },
    handler: async (req, res) => {
      requireAdmin(req.principal!, 'manage API keys');
      res.json({ items: (await listTokens(knex, req.ctx!.tenantId)).map(presentKey) });
    },
  });

  api.add({
    method: 'post',
    path: '/api-keys',
    operationId: 'createApiKey',
    summary: 'Create an admin API key or a SCIM token; the secret is in this response only',
    tag: 'API keys',
    body: {
      type: 'object',
      required: ['kind'],
      additionalProperties: false,
      properties: {
        kind: { enum: ['admin', 'scim'] },
        name: { type: 'string', minLength: 1, maxLength: 200 },
        expiresIn: { type: 'string', maxLength: 7, pattern: '^\\d{1,6}[smhd]$', description: 'e.g. 90d, 12h' },
        userId: { type: 'string', maxLength: 36, description: 'Admin keys only: the key acts as this user' },
      },
    },
    responses: { 201: { description: 'Created', schema: created } },
    handler: async (req, res, { body }) => {
      requireAdmin(req.principal!, 'manage API keys');
      const b = body as { kind: 'admin' | 'scim'; name?: string; expiresIn?: string; userId?: string };
      const expiresInMs = b.expiresIn === undefined ? undefined : parseDuration(b.expiresIn);
      if (b.expiresIn !== undefined && expiresInMs === undefined) {
        throw new InvalidInput('invalid_duration', 'expiresIn must be like 90d, 12h, 30m', {
          fields: [{ path: 'body.expiresIn', message: 'must be like 90d' }],
        });
      }
      if (b.userId && b.kind !== 'admin')
        throw new Unprocessable('scim_token_for_user', 'only admin keys can belong to a user', {
          fields: [{ path: 'body.userId', message: 'only with kind admin' }],
        });
      const t = await createApiKey(deps.db, req.ctx!, { kind: b.kind, name: b.name, expiresInMs, userId: b.userId });
      res.status(201).json({ ...presentKey(t), token: t.token });
    },
  });

  api.add({
    method: 'delete',
    path: '/api-keys/{id}',
    operationId: 'revokeApiKey',
    summary: 'Revoke a key; it stops working at the next request',
    tag: 'API keys',
    responses: { 200: { description: 'The revoked key', schema: key } },
    handler: async (req, res, { params }) => {
      requireAdmin(req.principal!, 'manage API keys');
      const t = await revokeApiKey(deps.db, req.ctx!, params.id!);
      res.json(presentKey(t));
    },
  });
}
