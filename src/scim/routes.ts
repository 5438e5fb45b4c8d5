import { Router, type Request, type Response } from 'express';
import type { AppDeps } from '../http/deps.js';
import type { Ctx } from '../context.js';
import { InvalidInput, NotFound, NotImplemented } from '../errors.js';
import { groupsOfUsers, loadMembersWithin, requireGroup, type IdpGroup } from '../directory/groups.js';
import { requireUser, type User } from '../directory/users.js';
import { bearerAuth } from '../http/auth.js';
import { parseJsonBody, requireJsonForWrites } from '../http/body.js';
import { scimRateLimit } from '../http/rate-limit.js';
import { resource } from '../http/routes.js';
import { createScimGroup, deleteScimGroup, patchScimGroup, replaceScimGroup } from '../provisioning/scim-groups.js';
import { createScimUser, deleteScimUser, patchScimUser, replaceScimUser } from '../provisioning/scim-users.js';
import { findResourceType, findSchema, resourceTypeDoc, schemaDoc, serviceProviderConfig } from './discovery.js';
import { processBulk } from './bulk.js';
import { etagOf, notModified, writeCondition } from './etag.js';
import type { VersionCondition } from '../db/versioned.js';
import { parseListParams, parseProjectionParams, type ListParams } from './list-params.js';
import { parsePatchOps } from './patch/parse.js';
import { includes, parseProjection, project, type Projection } from './projection.js';
import { DirectoryQueries } from './query.js';
import { allSchemas } from '../directory/model/definitions.js';
import { GROUP_RT, RESOURCE_TYPES, USER_RT } from '../directory/model/registry.js';
import { sendScim } from './send.js';
import { groupResource, LIST_RESPONSE, userLocation, groupLocation, userResource } from './serialize.js';

function listResponse(total: number, startIndex: number, resources: unknown[]) {
  return {
    schemas: [LIST_RESPONSE],
    totalResults: total,
    startIndex,
    itemsPerPage: resources.length,
    Resources: resources,
  };
}

/** A list's total, or the invalidFilter error of a filter this resource type cannot answer. */
async function countOrFilterError<T>(run: () => Promise<T>): Promise<T | InvalidInput> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof InvalidInput && err.extra.scimType === 'invalidFilter') return err;
    throw err;
  }
}

function ctxOf(req: Request): Ctx {
  return { ...req.ctx!, now: new Date() };
}

/** If-Match and If-None-Match of a write (RFC 7644 §3.14, RFC 9110 §13.1). */
function conditionOf(req: Request): VersionCondition | undefined {
  return writeCondition(req.get('if-match'), req.get('if-none-match'));
}

function param(req: Request, name: string): string {
  return String(req.params[name]);
}

/**
 * The projection a single-resource request asks for; a write parses it before writing, so a bad
 * one is a 400 with nothing changed.
 */
function queryProjection(req: Request, rt: typeof USER_RT): Projection {
  const q = parseProjectionParams(req.query as Record<string, unknown>);
  return parseProjection(rt, q.attributes, q.excludedAttributes);
}

export function scimRoutes(deps: AppDeps): Router {
  const { db, config } = deps;
  const base = config.publicBaseUrl;
  const queries = new DirectoryQueries(db.knex, config.scimQueryTimeoutMs);
  const r = Router();
  r.use(requireJsonForWrites());
  r.use(bearerAuth(db.knex, 'scim'));
  const rateLimit = scimRateLimit(config.scimRateLimit);
  r.use(rateLimit.middleware);
  r.use(
    parseJsonBody({
      limitBytes: config.bodyLimitBytes,
      maxDepth: config.jsonMaxDepth,
      timeoutMs: config.requestBodyTimeoutMs,
    }),
  );

  const presentUsers = async (tenantId: string, users: User[], p: Projection, fresh = false) => {
    // A user created by this very request belongs to no group yet. Groups share the response's
    // budget with members: users past it come without `groups`, never with a partial list.
    const groups =
      includes(p, 'groups') && !fresh
        ? await groupsOfUsers(
            db.knex,
            tenantId,
            users.map((u) => u.id),
            config.scimMembersPerResponse,
          )
        : undefined;
    return users.map((u) => project(userResource(u, base, groups?.get(u.id)), p));
  };
  const presentGroups = async (tenantId: string, groups: IdpGroup[], p: Projection) => {
    // excludedAttributes=members (every Entra group read) never touches the member table. One
    // response carries at most SCIM_MEMBERS_PER_RESPONSE members: the groups past that budget
    // come without `members` (RFC 7644 lets a server omit it), never with a partial list.
    const members = includes(p, 'members')
      ? await loadMembersWithin(
          db.knex,
          tenantId,
          groups.map((g) => g.id),
          config.scimMembersPerResponse,
        )
      : undefined;
    return groups.map((g) => project(groupResource(g, base, members?.get(g.id)), p));
  };
  const sendUser = async (res: Response, p: Projection, status: number, u: User) => {
    const [body] = await presentUsers(u.tenantId, [u], p, status === 201);
    res.setHeader('ETag', etagOf(u.version));
    if (status === 201) res.setHeader('Location', userLocation(base, u.id));
    sendScim(res, status, body);
  };
  const sendGroup = async (res: Response, p: Projection, status: number, g: IdpGroup) => {
    const [body] = await presentGroups(g.tenantId, [g], p);
    res.setHeader('ETag', etagOf(g.version));
    if (status === 201) res.setHeader('Location', groupLocation(base, g.id));
    sendScim(res, status, body);
  };

  const listUsers = async (tenantId: string, p: ListParams) => {
    const page = await queries.users(tenantId, p);
    return listResponse(
      page.total,
      p.startIndex,
      await presentUsers(tenantId, page.items, parseProjection(USER_RT, p.attributes, p.excludedAttributes)),
    );
  };
  const listGroups = async (tenantId: string, p: ListParams) => {
    const page = await queries.groups(tenantId, p);
    return listResponse(
      page.total,
      p.startIndex,
      await presentGroups(tenantId, page.items, parseProjection(GROUP_RT, p.attributes, p.excludedAttributes)),
    );
  };
  const searchBody = (req: Request): ListParams => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    if (typeof body !== 'object' || Array.isArray(body))
      throw new InvalidInput('invalid_body', 'a SearchRequest must be a JSON object', { scimType: 'invalidSyntax' });
    return parseListParams(body, 'body');
  };

  resource(r, '/Users', {
    get: async (req, res) =>
      sendScim(res, 200, await listUsers(req.ctx!.tenantId, parseListParams(req.query as Record<string, unknown>))),
    post: async (req, res) => {
      const p = queryProjection(req, USER_RT);
      await sendUser(res, p, 201, await createScimUser(db, ctxOf(req), req.body));
    },
  });
  resource(r, '/Users/.search', {
    post: async (req, res) => sendScim(res, 200, await listUsers(req.ctx!.tenantId, searchBody(req))),
  });
  resource(r, '/Users/:id', {
    get: async (req, res) => {
      const p = queryProjection(req, USER_RT);
      const u = await requireUser(db.knex, req.ctx!.tenantId, param(req, 'id'));
      if (notModified(req.get('if-none-match'), u.version))
        return void res.status(304).setHeader('ETag', etagOf(u.version)).end();
      await sendUser(res, p, 200, u);
    },
    put: async (req, res) => {
      const p = queryProjection(req, USER_RT);
      await sendUser(res, p, 200, await replaceScimUser(db, ctxOf(req), param(req, 'id'), req.body, conditionOf(req)));
    },
    patch: async (req, res) => {
      const p = queryProjection(req, USER_RT);
      const ops = parsePatchOps(req.body, USER_RT);
      await sendUser(res, p, 200, await patchScimUser(db, ctxOf(req), param(req, 'id'), ops, conditionOf(req)));
    },
    delete: async (req, res) => {
      await deleteScimUser(db, ctxOf(req), param(req, 'id'), conditionOf(req));
      res.status(204).end();
    },
  });

  resource(r, '/Groups', {
    get: async (req, res) =>
      sendScim(res, 200, await listGroups(req.ctx!.tenantId, parseListParams(req.query as Record<string, unknown>))),
    post: async (req, res) => {
      const p = queryProjection(req, GROUP_RT);
      await sendGroup(res, p, 201, await createScimGroup(db, ctxOf(req), req.body));
    },
  });
  resource(r, '/Groups/.search', {
    post: async (req, res) => sendScim(res, 200, await listGroups(req.ctx!.tenantId, searchBody(req))),
  });
  resource(r, '/Groups/:id', {
    get: async (req, res) => {
      const p = queryProjection(req, GROUP_RT);
      const g = await requireGroup(db.knex, req.ctx!.tenantId, param(req, 'id'));
      if (notModified(req.get('if-none-match'), g.version))
        return void res.status(304).setHeader('ETag', etagOf(g.version)).end();
      await sendGroup(res, p, 200, g);
    },
    put: async (req, res) => {
      const p = queryProjection(req, GROUP_RT);
      const { group } = await replaceScimGroup(db, ctxOf(req), param(req, 'id'), req.body, conditionOf(req));
      await sendGroup(res, p, 200, group);
    },
    patch: async (req, res) => {
      const p = queryProjection(req, GROUP_RT);
      const ops = parsePatchOps(req.body, GROUP_RT);
      const { group } = await patchScimGroup(db, ctxOf(req), param(req, 'id'), ops, conditionOf(req));
      // Entra expects 204 for group PATCH and advises against returning members; a client that
      // asks for attributes gets the resource.
      if (req.query.attributes === undefined) {
        res.setHeader('ETag', etagOf(group.version));
        return void res.status(204).end();
      }
      await sendGroup(res, p, 200, group);
    },
    delete: async (req, res) => {
      await deleteScimGroup(db, ctxOf(req), param(req, 'id'), conditionOf(req));
      res.status(204).end();
    },
  });

  // RFC 7644 §3.4.3: a search at the root covers every resource type, users first. A filter
  // that only one type can answer (userName, members) selects nothing of the other.
  resource(r, '/.search', {
    post: async (req, res) => {
      const p = searchBody(req);
      const tenantId = req.ctx!.tenantId;
      const [users, groups] = await Promise.all([
        countOrFilterError(() => queries.users(tenantId, { ...p, count: 0 })),
        countOrFilterError(() => queries.groups(tenantId, { ...p, count: 0 })),
      ]);
      if (users instanceof InvalidInput && groups instanceof InvalidInput) throw users;
      const nUsers = users instanceof InvalidInput ? 0 : users.total;
      const nGroups = groups instanceof InvalidInput ? 0 : groups.total;
      const out: unknown[] = [];
      if (nUsers && p.startIndex <= nUsers) out.push(...(await listUsers(tenantId, p)).Resources);
      const remaining = p.count - out.length;
      if (nGroups && remaining > 0) {
        out.push(
          ...(await listGroups(tenantId, { ...p, startIndex: Math.max(1, p.startIndex - nUsers), count: remaining }))
            .Resources,
        );
      }
      sendScim(res, 200, listResponse(nUsers + nGroups, p.startIndex, out));
    },
  });

  resource(r, '/Bulk', {
    post: async (req, res) =>
      sendScim(res, 200, await processBulk(db, req, base, (cost) => rateLimit.charge(req, cost))),
  });

  resource(r, '/ServiceProviderConfig', { get: (_req, res) => sendScim(res, 200, serviceProviderConfig(config)) });
  resource(r, '/ResourceTypes', {
    get: (_req, res) =>
      sendScim(
        res,
        200,
        listResponse(
          RESOURCE_TYPES.length,
          1,
          RESOURCE_TYPES.map((rt) => resourceTypeDoc(rt, base)),
        ),
      ),
  });
  resource(r, '/ResourceTypes/:name', {
    get: (req, res) => {
      const rt = findResourceType(param(req, 'name'));
      if (!rt) throw new NotFound('not_found', `no resource type "${param(req, 'name')}"`);
      sendScim(res, 200, resourceTypeDoc(rt, base));
    },
  });
  resource(r, '/Schemas', {
    get: (_req, res) =>
      sendScim(
        res,
        200,
        listResponse(
          allSchemas.length,
          1,
          allSchemas.map((s) => schemaDoc(s, base)),
        ),
      ),
  });
  resource(r, '/Schemas/:id', {
    get: (req, res) => {
      const s = findSchema(param(req, 'id'));
      if (!s) throw new NotFound('not_found', `no schema "${param(req, 'id')}"`);
      sendScim(res, 200, schemaDoc(s, base));
    },
  });
  // RFC 7644 §3.11 allows 501: a SCIM token authenticates a provisioning client, not a person.
  r.all('/Me', () => {
    throw new NotImplemented(
      'me_not_supported',
      '/Me is not available with a SCIM token: it authenticates a client, not a person',
    );
  });
  return r;
}
