import { Forbidden } from '../errors.js';
import type { Api, JsonSchema } from './api.js';
import { presentUser } from './users.js';

/** The signed-in person (a session, or a key that acts as a user) and what they may do right now. */
export function registerMe(api: Api, user: JsonSchema): void {
  const me = api.schema('Me', {
    type: 'object',
    required: ['user', 'permissions'],
    properties: {
      user,
      permissions: {
        type: 'object',
        required: ['effective'],
        properties: {
          effective: {
            type: 'object',
            additionalProperties: { $ref: '#/components/schemas/EffectiveArea' },
            description: 'Every area of the catalogue',
          },
        },
      },
    },
  });
  api.add({
    method: 'get',
    path: '/me',
    operationId: 'getMe',
    summary: 'The signed-in user and their effective permissions, as of this request',
    tag: 'Users',
    responses: { 200: { description: 'The user and their permissions', schema: me } },
    handler: (req, res) => {
      const p = req.principal!;
      if (p.kind !== 'user')
        throw new Forbidden(
          'not_a_user',
          'this credential is a tenant admin key, not a person; sign in or use a key that belongs to a user',
        );
      res.json({ user: presentUser(p.user), permissions: { effective: p.effective } });
    },
  });
}
