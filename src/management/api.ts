import type { Request, RequestHandler, Response, Router } from 'express';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule, { type FormatsPlugin } from 'ajv-formats';
import { ACCESS_TEXT, accessOf, gate, type Access } from '../access/operation-access.js';
import type { Area } from '../access/catalogue.js';
import { InvalidInput, type FieldError } from '../errors.js';
import { resource } from '../http/routes.js';

export type JsonSchema = Record<string, unknown>;
type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

export interface ResponseSpec {
  description: string;
  schema?: JsonSchema;
  /** Defaults to application/json. Non-JSON bodies (CSV, NDJSON) are described, not validated. */
  contentType?: string;
  alsoContentTypes?: string[];
}

export interface Input<Q = Record<string, unknown>, B = unknown> {
  params: Record<string, string>;
  query: Q;
  body: B;
}

export interface OperationSpec {
  method: Method;
  /** OpenAPI form: `/users/{id}`. */
  path: string;
  operationId: string;
  summary: string;
  tag: string;
  description?: string;
  query?: { properties: Record<string, JsonSchema>; required?: string[] };
  body?: JsonSchema;
  /** A body the handler reads itself as a stream (e.g. CSV), described but not parsed. */
  rawBody?: { contentType: string; description: string };
  responses: Record<number, ResponseSpec>;
  // biome-ignore lint/suspicious/noExplicitAny: a registry holds operations of every input type
  handler: (req: Request, res: Response, input: Input<any, any>) => unknown;
}

type Registered = OperationSpec & { access: Access };

const COMPONENT_REF = /^#\/components\/schemas\/(.+)$/;

// ajv-formats ships CommonJS with a default export that TypeScript sees one level down.
const addFormats = ((addFormatsModule as unknown as { default?: FormatsPlugin }).default ??
  addFormatsModule) as unknown as FormatsPlugin;

/** Rewrites document-relative component refs into ajv schema ids. */
function forAjv(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(forAjv);
  if (!schema || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === '$ref' && typeof v === 'string' && COMPONENT_REF.test(v)) out[k] = `roster:${COMPONENT_REF.exec(v)![1]}`;
    else out[k] = forAjv(v);
  }
  return out;
}

export function fieldErrors(errors: ErrorObject[] | null | undefined, root: string): FieldError[] {
  return (errors ?? []).map((e) => {
    const at = e.instancePath.replace(/^\//, '').replace(/\//g, '.');
    const missing = e.keyword === 'required' ? String((e.params as { missingProperty: string }).missingProperty) : '';
    const extra =
      e.keyword === 'additionalProperties'
        ? String((e.params as { additionalProperty: string }).additionalProperty)
        : '';
    const path = [root, at, missing || extra].filter(Boolean).join('.');
    const message = extra
      ? 'is not a known field'
      : e.keyword === 'enum'
        ? `must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`
        : (e.message ?? 'is invalid');
    return { path, message };
  });
}

/**
 * The management API's one registry of operations. Each operation's JSON schemas validate its
 * requests (and, in tests, its responses) and describe it in the OpenAPI document, so the
 * document cannot drift from what the server does.
 */
export class Api {
  /** Each operation with who may call it, from the one table in access/operation-access.ts. */
  private readonly ops: Registered[] = [];
  private readonly components: Record<string, JsonSchema> = {};
  private readonly ajv = new Ajv({ allErrors: true, strict: false, useDefaults: true });
  private readonly queryAjv = new Ajv({ allErrors: true, strict: false, coerceTypes: 'array', useDefaults: true });

  constructor(private readonly opts: { validateResponses: boolean; catalogue: Area[] }) {
    addFormats(this.ajv);
    addFormats(this.queryAjv);
  }

  /** Registers a named schema and answers a reference to it. */
  schema(name: string, schema: JsonSchema): JsonSchema {
    if (this.components[name]) throw new Error(`schema ${name} registered twice`);
    this.components[name] = schema;
    const compiled = { ...(forAjv(schema) as JsonSchema), $id: `roster:${name}` };
    this.ajv.addSchema(compiled);
    this.queryAjv.addSchema(compiled);
    return { $ref: `#/components/schemas/${name}` };
  }

  /** Registers an operation; one missing from the access table is refused at start-up. */
  add(spec: OperationSpec): void {
    this.ops.push({ ...spec, access: accessOf(spec.operationId) });
  }

  /**
   * Mounts the public or the authenticated operations on the router, one 405-answering resource
   * per path; `before` runs ahead of each operation only (e.g. the body parser of public ones).
   */
  mount(router: Router, which: 'public' | 'authenticated', before: RequestHandler[] = []): void {
    const byPath = new Map<string, Registered[]>();
    for (const op of this.ops) {
      if ((op.access === 'public') === (which === 'public')) byPath.set(op.path, [...(byPath.get(op.path) ?? []), op]);
    }
    // Literal segments before parameters, so /invitations/accept is not read as /invitations/{id}.
    const paths = [...byPath.keys()].sort((a, b) => specificity(b) - specificity(a));
    for (const path of paths) {
      const handlers: Partial<Record<Method, RequestHandler[]>> = {};
      for (const op of byPath.get(path)!) handlers[op.method] = [...before, this.handlerFor(op)];
      resource(router, path.replace(/\{(\w+)\}/g, ':$1'), handlers);
    }
  }

  private handlerFor(op: Registered): RequestHandler {
    const query = this.queryAjv.compile(
      forAjv({
        type: 'object',
        properties: op.query?.properties ?? {},
        required: op.query?.required ?? [],
        additionalProperties: false,
      }) as JsonSchema,
    );
    const body = op.body ? this.ajv.compile(forAjv(op.body) as JsonSchema) : undefined;
    const responses = new Map<number, ValidateFunction>();
    if (this.opts.validateResponses) {
      for (const [status, r] of Object.entries(op.responses)) {
        if (r.schema && !r.contentType) responses.set(Number(status), this.ajv.compile(forAjv(r.schema) as JsonSchema));
      }
    }
    return async (req, res) => {
      const q: Record<string, unknown> = { ...(req.query as Record<string, unknown>) };
      if (!query(q))
        throw new InvalidInput('invalid_query', 'the query string is invalid', {
          fields: fieldErrors(query.errors, 'query'),
        });
      let b: unknown = req.body;
      if (body) {
        if (b === undefined)
          throw new InvalidInput('missing_body', 'a JSON body is required', {
            fields: [{ path: 'body', message: 'is required' }],
          });
        if (!body(b))
          throw new InvalidInput('invalid_body', 'the request body is invalid', {
            fields: fieldErrors(body.errors, 'body'),
          });
      } else b = undefined;
      if (responses.size) checkResponses(res, op, responses);
      if (op.access !== 'public') gate(req.principal!, this.opts.catalogue, op.access, `call ${op.operationId}`);
      await op.handler(req, res, { params: req.params as Record<string, string>, query: q, body: b });
    };
  }

  /** The OpenAPI 3.1 document of every registered operation. */
  document(info: { title: string; version: string; serverUrl: string }): JsonSchema {
    const paths: Record<string, Record<string, unknown>> = {};
    for (const op of this.ops) {
      const params = [...op.path.matchAll(/\{(\w+)\}/g)].map((m) => ({
        name: m[1],
        in: 'path',
        required: true,
        schema: { type: 'string' },
      }));
      const queryParams = Object.entries(op.query?.properties ?? {}).map(([name, schema]) => ({
        name,
        in: 'query',
        required: op.query?.required?.includes(name) ?? false,
        schema,
      }));
      paths[op.path] ??= {};
      paths[op.path]![op.method] = {
        operationId: op.operationId,
        summary: op.summary,
        description: [op.description, ACCESS_TEXT[op.access]].filter(Boolean).join('\n\n'),
        'x-roster-access': op.access,
        tags: [op.tag],
        ...(op.access === 'public' ? { security: [] } : {}),
        parameters: [...params, ...queryParams],
        ...(op.body ? { requestBody: { required: true, content: { 'application/json': { schema: op.body } } } } : {}),
        ...(op.rawBody
          ? {
              requestBody: {
                required: true,
                description: op.rawBody.description,
                content: { [op.rawBody.contentType]: { schema: { type: 'string' } } },
              },
            }
          : {}),
        responses: Object.fromEntries([
          ...Object.entries(op.responses).map(([status, r]) => [
            status,
            {
              description: r.description,
              ...(r.schema || r.contentType
                ? {
                    content: Object.fromEntries(
                      [r.contentType ?? 'application/json', ...(r.alsoContentTypes ?? [])].map((t) => [
                        t,
                        r.schema ? { schema: r.schema } : {},
                      ]),
                    ),
                  }
                : {}),
            },
          ]),
          [
            'default',
            {
              description: 'An error',
              content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
            },
          ],
        ]),
      };
    }
    return {
      openapi: '3.1.0',
      info: { title: info.title, version: info.version },
      servers: [{ url: info.serverUrl }],
      security: [{ bearer: [] }, { session: [] }],
      paths,
      components: {
        securitySchemes: {
          bearer: {
            type: 'http',
            scheme: 'bearer',
            description: 'An admin API key (roster_admin_…); a key owned by a user acts as that user',
          },
          session: {
            type: 'apiKey',
            in: 'cookie',
            name: 'roster_session',
            description:
              'A sign-in session (SAML or OIDC). Writes also need the X-CSRF-Token header from GET /auth/csrf.',
          },
        },
        schemas: this.components,
      },
    };
  }
}

function specificity(path: string): number {
  return path.split('/').reduce((n, seg) => n * 2 + (seg.startsWith('{') ? 0 : 1), 1);
}

class ResponseMismatch extends Error {}

/** Test mode: a JSON response that its schema does not describe fails the request loudly. */
function checkResponses(res: Response, op: OperationSpec, responses: Map<number, ValidateFunction>): void {
  const json = res.json.bind(res);
  res.json = (body: unknown) => {
    const validate = responses.get(res.statusCode);
    if (res.statusCode < 400 && !validate && op.responses[res.statusCode] === undefined) {
      throw new ResponseMismatch(
        `${op.operationId} answered ${res.statusCode}, which its OpenAPI description does not list`,
      );
    }
    if (validate && !validate(body)) {
      // Test mode only: the message must reach the developer, while the response stays a 500.
      console.error(`${op.operationId} ${res.statusCode}: ${JSON.stringify(validate.errors)}`);
      throw new ResponseMismatch(
        `${op.operationId} ${res.statusCode} response does not match its schema: ${JSON.stringify(validate.errors)}`,
      );
    }
    return json(body);
  };
}
