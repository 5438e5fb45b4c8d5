import type { Api, JsonSchema } from './api.js';

/** Schemas shared by several resources, registered once. */
export function commonSchemas(api: Api) {
  const problem = api.schema('Problem', {
    type: 'object',
    required: ['type', 'title', 'status', 'code', 'detail'],
    properties: {
      type: { type: 'string' },
      title: { type: 'string' },
      status: { type: 'integer' },
      code: { type: 'string', description: 'A stable, machine-readable error code' },
      detail: { type: 'string' },
      instance: { type: 'string' },
      requestId: { type: 'string' },
      fields: {
        type: 'array',
        items: {
          type: 'object',
          required: ['path', 'message'],
          properties: { path: { type: 'string' }, message: { type: 'string' } },
        },
      },
    },
  });
  const id = { type: 'string', minLength: 1, maxLength: 36 } as const;
  const timestamp = { type: 'string', format: 'date-time' } as const;
  return { problem, id, timestamp };
}

/** A page of a cursor-paginated list. */
export function pageOf(items: JsonSchema): JsonSchema {
  return {
    type: 'object',
    required: ['items', 'nextCursor'],
    properties: { items: { type: 'array', items }, nextCursor: { type: ['string', 'null'] } },
  };
}

export const pageQuery = {
  limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 },
  cursor: { type: 'string', maxLength: 500 },
} as const;
