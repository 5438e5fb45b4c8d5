import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import type { Express, Router } from 'express';
import request from 'supertest';
import { createApp } from '../../../src/app.js';
import type { AppDeps } from '../../../src/http/deps.js';
import { scimRoutes } from '../../../src/scim/routes.js';
import { bind } from '../../../src/connections/bindings.js';
import { testDeps } from '../../support/app.js';
import { dialectName } from '../../support/db.js';
import { buildTenant, type TestTenant } from '../../support/factories.js';
import { rowChanges, tenantRows, tenantTables } from '../../support/tenant-rows.js';
import { ENTERPRISE, GROUP, oktaUser, PATCH_OP, patchBody, scimClient, USER } from '../../support/scim.js';

/**
 * One tenant-isolation test over every route, enumerated from the sources of truth: the
 * management registry (through the OpenAPI document it generates) and the SCIM router's own
 * route table. For each route and each id it takes (path, body or query), tenant A's admin
 * credentials (the SCIM token for SCIM) send tenant B's id while every other id is A's own:
 * - a path id answers 404; an id in a body or query 400/404/422 naming it, or else exactly what
 *   an id that never existed gets (an access check denies an unknown user, a list filtered by
 *   it is empty);
 * - B's rows do not change, nor do A's when the request is refused;
 * - no answer to A, of any route, whatever its status, shows B's ids, names or emails beyond
 *   what the request itself sent; lists are also read without their filters.
 * Each route also runs with A's own ids and must work, so a 404 above is not that of a broken
 * request. A route this file cannot exercise (a path parameter with no factory, a body with no
 * entry) fails the first test: a route added later is covered or reported, never skipped.
 */

/** The kinds of object a route can name; each has a factory below that makes one in a tenant. */
type Kind =
  | 'user'
  | 'invitedUser'
  | 'group'
  | 'otherGroup'
  | 'agent'
  | 'grant'
  | 'dataSource'
  | 'roleTemplate'
  | 'otherRoleTemplate'
  | 'apiKey'
  | 'mappingRule'
  | 'ssoConnection'
  | 'idpGroup'
  | 'job';

interface Obj {
  id: string;
  name?: string;
  email?: string;
}
type Fixture = Record<Kind, Obj>;

/** Which kind a path parameter names: `segment.param` first, then the parameter, then `id` after its segment. */
const PATH_KINDS: Record<string, Kind> = {
  'invitations.userId': 'invitedUser',
  userId: 'user',
  agentId: 'agent',
  groupId: 'group',
  grantId: 'grant',
  dsId: 'dataSource',
  connectionId: 'ssoConnection',
  'users.id': 'user',
  'groups.id': 'group',
  'agents.id': 'agent',
  'role-templates.id': 'roleTemplate',
  'api-keys.id': 'apiKey',
  'mapping-rules.id': 'mappingRule',
  'sso-connections.id': 'ssoConnection',
  'jobs.id': 'job',
  // SCIM
  'Users.id': 'user',
  'Groups.id': 'idpGroup',
};

/** Path parameters that name no tenant's data (SCIM discovery), with the value to send. */
const STATIC_PARAMS: Record<string, string> = {
  'ResourceTypes.name': 'User',
  'Schemas.id': USER,
};

/** Query parameters that take an id, by name; any other `…Id` parameter fails the test. */
const QUERY_KINDS: Record<string, Kind> = {
  userId: 'user',
  groupId: 'group',
  parentId: 'otherGroup',
  templateId: 'roleTemplate',
  createdBy: 'user',
  entityId: 'user',
  actorId: 'apiKey',
  reassign: 'otherRoleTemplate',
};

/** Operations about the caller as a person: sent with a key of A's user instead of the tenant's admin key. */
const AS_USER = new Set(['getMe']);

type Body = (t: Fixture) => unknown;

/** A JSON body for every management operation that takes one, by operationId. */
const BODIES: Record<string, Body> = {
  updateTenant: () => ({ jitProvisioning: false }),
  updateUser: (t) => ({ templateId: t.roleTemplate.id }),
  setUserPermissions: () => ({ areas: {} }),
  checkAreas: (t) => ({ userId: t.user.id, area, action: 'view' }),
  inviteUser: (t) => ({ email: `invitee-${seq()}@a.example.com`, role: 'member', templateId: t.roleTemplate.id }),
  createRoleTemplate: () => ({ name: `template ${seq()}`, areas: {} }),
  updateRoleTemplate: () => ({ name: `template ${seq()}`, areas: {} }),
  createApiKey: (t) => ({ kind: 'admin', name: `key ${seq()}`, userId: t.user.id }),
  createGroup: (t) => ({ name: `group ${seq()}`, parentId: t.otherGroup.id }),
  updateGroup: (t) => ({ parentId: t.otherGroup.id }),
  addGroupMembers: (t) => ({ userIds: [t.user.id], role: 'member' }),
  removeGroupMembers: (t) => ({ userIds: [t.user.id] }),
  createAgent: (t) => ({ name: `agent ${seq()}`, accessType: 'groups', createdBy: t.user.id }),
  updateAgent: () => ({ description: 'changed' }),
  createAgentGrant: (t) => ({ groupId: t.otherGroup.id, permission: 'view_use' }),
  updateAgentGrant: () => ({ permission: 'edit' }),
  createAgentDataSource: (t) => ({ name: `source ${seq()}`, access: 'groups', groupIds: [t.group.id] }),
  updateAgentDataSource: (t) => ({ access: 'groups', groupIds: [t.otherGroup.id] }),
  checkAgentAccessBatch: (t) => ({ checks: [{ userId: t.user.id, agentId: t.agent.id, action: 'use' }] }),
  createMappingRule: (t) => ruleBody(t, `rule ${seq()}`, 'idpGroup'),
  updateMappingRule: (t) => {
    const { match, actions } = ruleBody(t, 'x', 'connection');
    return { match, actions };
  },
  previewMappingRule: (t) => ({ ...ruleBody(t, 'preview', 'idpGroup'), ruleId: t.mappingRule.id }),
  // Disabled: a second enabled connection would need email domains on the first one too.
  createSsoConnection: () => ({ protocol: 'oidc', name: `idp ${seq()}`, enabled: false, issuer: 'https://idp.a.example.com', clientId: 'c', clientSecret: 's' }),
  updateSsoConnection: () => ({ name: `idp ${seq()}` }),
};

/** Bodies of operations that read their own stream (CSV imports). */
const RAW_BODIES: Record<string, (t: Fixture) => { type: string; text: string }> = {
  importGroupMembers: (t) => ({ type: 'text/csv', text: `Name,Email,Group\nSomeone,${t.user.email},${t.group.name}\n` }),
  importAgentGrants: (t) => ({ type: 'text/csv', text: `AgentId,GroupId,Permission\n${t.agent.id},${t.group.id},VIEW_AND_USE\n` }),
};

interface ScimCase {
  body?: Body;
  query?: (t: Fixture) => Record<string, string>;
  /** An answer of 200 whose per-operation statuses carry the verdict (Bulk). */
  bulk?: boolean;
  /** The status of a request naming nothing of B's, when it is not a success. */
  control?: number;
}

/** How to exercise each SCIM route (`METHOD path` as the router declares it). */
const SCIM: Record<string, ScimCase> = {
  'GET /Users': { query: (t) => ({ filter: `userName eq "${t.user.email}"` }) },
  'POST /Users': { body: (t) => ({ ...oktaUser(`new-${seq()}@a.example.com`), schemas: [USER, ENTERPRISE], [ENTERPRISE]: { manager: { value: t.user.id } } }) },
  'POST /Users/.search': { body: (t) => ({ schemas: ['urn:ietf:params:scim:api:messages:2.0:SearchRequest'], filter: `id eq "${t.user.id}"` }) },
  'GET /Users/:id': {},
  'PUT /Users/:id': { body: () => oktaUser(`replaced-${seq()}@a.example.com`) },
  'PATCH /Users/:id': { body: () => patchBody({ op: 'replace', path: 'displayName', value: 'Changed' }) },
  'DELETE /Users/:id': {},
  'GET /Groups': { query: (t) => ({ filter: `members.value eq "${t.user.id}"` }) },
  'POST /Groups': { body: (t) => ({ schemas: [GROUP], displayName: `idp ${seq()}`, members: [{ value: t.user.id }] }) },
  'POST /Groups/.search': { body: (t) => ({ schemas: ['urn:ietf:params:scim:api:messages:2.0:SearchRequest'], filter: `id eq "${t.idpGroup.id}"` }) },
  'GET /Groups/:id': {},
  'PUT /Groups/:id': { body: (t) => ({ schemas: [GROUP], displayName: t.idpGroup.name, members: [{ value: t.user.id }] }) },
  'PATCH /Groups/:id': { body: (t) => patchBody({ op: 'add', path: 'members', value: [{ value: t.user.id }] }) },
  'DELETE /Groups/:id': {},
  'POST /.search': { body: (t) => ({ schemas: ['urn:ietf:params:scim:api:messages:2.0:SearchRequest'], filter: `id eq "${t.user.id}"` }) },
  'POST /Bulk': {
    bulk: true,
    body: (t) => ({
      schemas: ['urn:ietf:params:scim:api:messages:2.0:BulkRequest'],
      Operations: [
        { method: 'PATCH', path: `/Users/${t.user.id}`, data: { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'displayName', value: 'Bulk' }] } },
        { method: 'PATCH', path: `/Groups/${t.idpGroup.id}`, data: { schemas: [PATCH_OP], Operations: [{ op: 'add', path: 'members', value: [{ value: t.user.id }] }] } },
      ],
    }),
  },
  'GET /ServiceProviderConfig': {},
  'GET /ResourceTypes': {},
  'GET /ResourceTypes/:name': {},
  'GET /Schemas': {},
  'GET /Schemas/:id': {},
  'GET /Me': { control: 501 },
};

let counter = 0;
/** A unique part of a name, which comparisons of two answers blank out (see `normalized`). */
const seq = () => `q${++counter}q`;
/** An area of the catalogue, read at the start (area checks name one). */
let area = '';

/** A rule whose match names an IdP group by id (SCIM) or a connection, and whose actions name A's or B's objects. */
function ruleBody(t: Fixture, name: string, match: 'idpGroup' | 'connection') {
  return {
    name,
    enabled: true,
    match:
      match === 'idpGroup'
        ? { source: 'scim', field: 'id', operator: 'equals', value: t.idpGroup.id }
        : { source: 'connection', connectionId: t.ssoConnection.id, field: 'displayName', operator: 'equals', value: 'Engineering' },
    actions: { groups: [{ groupId: t.group.id, role: 'member' }], agents: [{ agentId: t.agent.id, permission: 'view_use' }] },
  };
}

/** A route, the kinds of object it names, and how to exercise it. */
interface Route {
  api: 'management' | 'scim';
  method: string;
  /** As declared: `/users/{id}` or `/Users/:id`. */
  path: string;
  label: string;
  operationId?: string;
  pathKinds: { param: string; kind: Kind }[];
  staticParams: Record<string, string>;
  queryKinds: Record<string, Kind>;
  body?: Body;
  raw?: (t: Fixture) => { type: string; text: string };
  scimQuery?: (t: Fixture) => Record<string, string>;
  bulk?: boolean;
  control?: number;
}

interface OpenApiOperation {
  operationId: string;
  security?: unknown[];
  parameters?: { name: string; in: string }[];
  requestBody?: { content: Record<string, unknown> };
}

/** Every authenticated management operation, from the document the registry generates. */
function managementRoutes(doc: { paths: Record<string, Record<string, OpenApiOperation>> }, problems: string[]): Route[] {
  const out: Route[] = [];
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const label = `${method.toUpperCase()} /api/v1${path} (${op.operationId})`;
      // Public operations take their credential in the body (an invitation token), not a tenant's key.
      if (op.security && op.security.length === 0) continue;
      const pathKinds = paramKinds(path, /\{(\w+)\}/g, label, problems);
      const queryKinds: Record<string, Kind> = {};
      for (const p of op.parameters ?? []) {
        if (p.in !== 'query') continue;
        const kind = QUERY_KINDS[p.name];
        if (kind) queryKinds[p.name] = kind;
        else if (/Id$|By$/.test(p.name)) problems.push(`${label}: query parameter ${p.name} looks like an id but has no kind in QUERY_KINDS`);
      }
      const types = Object.keys(op.requestBody?.content ?? {});
      const route: Route = { api: 'management', method, path, label, operationId: op.operationId, pathKinds: pathKinds.kinds, staticParams: pathKinds.statics, queryKinds };
      if (types.includes('application/json')) {
        route.body = BODIES[op.operationId];
        if (!route.body) problems.push(`${label}: no body in BODIES`);
      } else if (types.length) {
        route.raw = RAW_BODIES[op.operationId];
        if (!route.raw) problems.push(`${label}: no body in RAW_BODIES`);
      }
      out.push(route);
    }
  }
  return out;
}

/** Every SCIM endpoint, read off the router's own route table. */
function scimRoutesOf(router: Router, problems: string[]): Route[] {
  const stack = (router as unknown as { stack: { route?: { path: string; methods: Record<string, boolean> } }[] }).stack;
  // `resource()` follows each path's methods with a catch-all answering 405; a path served by a
  // catch-all alone (/Me answers 501 to every method) is exercised with GET.
  const methods = new Map<string, Set<string>>();
  for (const { route } of stack) {
    if (!route) continue;
    const declared = methods.get(route.path) ?? new Set<string>();
    for (const m of Object.keys(route.methods)) if (m !== '_all') declared.add(m);
    methods.set(route.path, declared);
  }
  const out: Route[] = [];
  for (const [path, declared] of methods) {
    for (const method of declared.size ? declared : ['get']) {
      const label = `${method.toUpperCase()} /scim/v2${path}`;
      const spec = SCIM[`${method.toUpperCase()} ${path}`];
      if (!spec) {
        problems.push(`${label}: no entry in SCIM`);
        continue;
      }
      const kinds = paramKinds(path, /:(\w+)/g, label, problems);
      out.push({
        api: 'scim',
        method,
        path,
        label,
        pathKinds: kinds.kinds,
        staticParams: kinds.statics,
        queryKinds: {},
        body: spec.body,
        scimQuery: spec.query,
        bulk: spec.bulk,
        control: spec.control,
      });
    }
  }
  return out;
}

function paramKinds(path: string, pattern: RegExp, label: string, problems: string[]) {
  const kinds: { param: string; kind: Kind }[] = [];
  const statics: Record<string, string> = {};
  const segments = path.split('/');
  for (const m of path.matchAll(pattern)) {
    const param = m[1]!;
    const at = segments.findIndex((s) => s === m[0]);
    const segment = segments[at - 1] ?? '';
    const key = `${segment}.${param}`;
    if (STATIC_PARAMS[key] !== undefined) statics[param] = STATIC_PARAMS[key];
    else {
      const kind = PATH_KINDS[key] ?? PATH_KINDS[param];
      if (kind) kinds.push({ param, kind });
      else problems.push(`${label}: no factory kind for path parameter ${param} (add it to PATH_KINDS)`);
    }
  }
  return { kinds, statics };
}

/** The kinds a body or query builder reads, found by running it over a recording fixture. */
function kindsRead(build: ((t: Fixture) => unknown) | undefined): Kind[] {
  if (!build) return [];
  const read = new Set<Kind>();
  const probe = new Proxy({} as Fixture, {
    get: (_t, kind: string) => {
      read.add(kind as Kind);
      return { id: 'probe', name: 'probe', email: 'probe@probe.example' };
    },
  });
  build(probe);
  return [...read];
}

function kindsOf(r: Route): Kind[] {
  return [...new Set([...r.pathKinds.map((p) => p.kind), ...Object.values(r.queryKinds), ...kindsRead(r.body), ...kindsRead(r.raw), ...kindsRead(r.scimQuery)])];
}

describe('tenant isolation: every route, ids of another tenant', function () {
  // Two tenants, one of each object, reused by every request.
  this.timeout(dialectName === 'mysql' ? 180_000 : 90_000);
  let deps: AppDeps;
  let app: Express;
  let a: TestTenant;
  let b: TestTenant;
  let routes: Route[];
  const problems: string[] = [];
  let marker: Record<'a' | 'b', string>;
  let userAuth: { Authorization: string };

  const admin = (t: TestTenant) => (method: 'get' | 'post' | 'patch' | 'put' | 'delete', path: string) => request(app)[method](`/api/v1${path}`).set(t.admin);
  const created = (res: request.Response, what: string): string => {
    if (res.status >= 300 || typeof res.body?.id !== 'string') throw new Error(`factory ${what}: ${res.status} ${res.text}`);
    return res.body.id as string;
  };

  /** Makes one object of a kind in a tenant through the public APIs, with the objects it needs. */
  const factories: Record<Kind, (t: TestTenant, get: (k: Kind) => Promise<Obj>, m: string) => Promise<Obj>> = {
    user: async (t, _get, m) => {
      const email = `person-${seq()}@${m}.example.com`;
      return { id: created(await scimClient(app, t.scimToken).post('/Users', oktaUser(email, { externalId: `ext-${m}-${seq()}` })), 'user'), email };
    },
    invitedUser: async (t, _get, m) => {
      const email = `invitee-${seq()}@${m}.example.com`;
      const res = await admin(t)('post', '/invitations').send({ email, role: 'member' });
      if (res.status !== 201) throw new Error(`factory invitedUser: ${res.status} ${res.text}`);
      return { id: String(res.body.user?.id ?? res.body.userId ?? res.body.id), email };
    },
    group: async (t, get, m) => {
      const name = `${m} group ${seq()}`;
      const id = created(await admin(t)('post', '/groups').send({ name }), 'group');
      const members = await admin(t)('post', `/groups/${id}/members`).send({ userIds: [(await get('user')).id], role: 'manager' });
      if (members.status >= 300) throw new Error(`factory group members: ${members.status} ${members.text}`);
      return { id, name };
    },
    otherGroup: async (t, _get, m) => {
      const name = `${m} other group ${seq()}`;
      return { id: created(await admin(t)('post', '/groups').send({ name }), 'otherGroup'), name };
    },
    agent: async (t, get, m) => {
      const name = `${m} agent ${seq()}`;
      return { id: created(await admin(t)('post', '/agents').send({ name, accessType: 'groups', createdBy: (await get('user')).id }), 'agent'), name };
    },
    grant: async (t, get) => {
      const [agent, group] = [await get('agent'), await get('group')];
      return { id: created(await admin(t)('post', `/agents/${agent.id}/grants`).send({ groupId: group.id, permission: 'view_use' }), 'grant') };
    },
    dataSource: async (t, get, m) => {
      const [agent, group] = [await get('agent'), await get('group')];
      const name = `${m} source ${seq()}`;
      return { id: created(await admin(t)('post', `/agents/${agent.id}/data-sources`).send({ name, access: 'groups', groupIds: [group.id] }), 'dataSource'), name };
    },
    roleTemplate: async (t, get, m) => {
      const name = `${m} template ${seq()}`;
      const id = created(await admin(t)('post', '/role-templates').send({ name, areas: {} }), 'roleTemplate');
      const user = await admin(t)('patch', `/users/${(await get('user')).id}`).send({ templateId: id });
      if (user.status !== 200) throw new Error(`factory roleTemplate user: ${user.status} ${user.text}`);
      return { id, name };
    },
    otherRoleTemplate: async (t, _get, m) => {
      const name = `${m} other template ${seq()}`;
      return { id: created(await admin(t)('post', '/role-templates').send({ name, areas: {} }), 'otherRoleTemplate'), name };
    },
    apiKey: async (t, _get, m) => {
      const name = `${m} key ${seq()}`;
      return { id: created(await admin(t)('post', '/api-keys').send({ kind: 'scim', name }), 'apiKey'), name };
    },
    ssoConnection: async (t, get, m) => {
      const name = `${m} idp ${seq()}`;
      const id = created(
        await admin(t)('post', '/sso-connections').send({
          protocol: 'oidc',
          name,
          domains: [`sso${seq()}.${m}.example.com`],
          issuer: `https://${m}.example.com`,
          clientId: `${m}-client`,
          clientSecret: `${m}-secret`,
        }),
        'ssoConnection',
      );
      // A sign-in binding, so that a removal through the other tenant would show.
      const userId = (await get('user')).id;
      await deps.db.tx((trx) => bind(trx, t.tenant.id, id, `${m}-subject-${seq()}`, userId, Date.now()));
      return { id, name };
    },
    mappingRule: async (t, get, m) => {
      const [idpGroup, group, agent] = [await get('idpGroup'), await get('group'), await get('agent')];
      const name = `${m} rule ${seq()}`;
      const res = await admin(t)('post', '/mapping-rules').send({
        name,
        enabled: true,
        match: { source: 'scim', field: 'displayName', operator: 'equals', value: idpGroup.name },
        actions: { groups: [{ groupId: group.id, role: 'member' }], agents: [{ agentId: agent.id, permission: 'view_use' }] },
      });
      if (res.status >= 300) throw new Error(`factory mappingRule: ${res.status} ${res.text}`);
      return { id: String(res.body.rule?.id ?? res.body.id), name };
    },
    idpGroup: async (t, get, m) => {
      const name = `${m} idp group ${seq()}`;
      const res = await scimClient(app, t.scimToken).post('/Groups', { schemas: [GROUP], displayName: name, members: [{ value: (await get('user')).id }] });
      return { id: created(res, 'idpGroup'), name };
    },
    job: async (t, get) => {
      // Where jobs exist, a reconcile runs as one, and so does an import larger than a request applies itself.
      const jobOf = (res: request.Response) => {
        const job = (res.body?.job ?? res.body) as { id?: string; kind?: string } | undefined;
        return job?.id && job.kind ? { id: job.id } : undefined;
      };
      const reconciled = jobOf(await admin(t)('post', '/mapping-rules/reconcile'));
      if (reconciled) return reconciled;
      const [user, group] = [await get('user'), await get('group')];
      const csv = `Name,Email,Group\n${`Someone,${user.email},${group.name}\n`.repeat(1001)}`;
      const res = await admin(t)('post', '/imports/group-members').set('Content-Type', 'text/csv').send(csv);
      const imported = jobOf(res);
      if (!imported) throw new Error(`factory job: neither a reconcile nor a large import made a job: ${res.status} ${res.text.slice(0, 500)}`);
      return imported;
    },
  };

  /** The kinds asked for (and what they need) in one tenant, each made once. */
  async function build(t: TestTenant, m: string, kinds: Kind[]): Promise<Fixture> {
    const made = new Map<Kind, Promise<Obj>>();
    const get = (k: Kind): Promise<Obj> => {
      if (!made.has(k)) made.set(k, factories[k](t, get, m));
      return made.get(k)!;
    };
    // One at a time: the order of writes stays the same from run to run.
    for (const k of kinds) await get(k);
    const out: Partial<Fixture> = {};
    for (const [k, p] of made) out[k] = await p;
    return out as Fixture;
  }

  before(async () => {
    deps = await testDeps();
    app = createApp(deps);
    a = await buildTenant();
    b = await buildTenant();
    marker = { a: `iso-a-${randomBytes(4).toString('hex')}`, b: `iso-b-${randomBytes(4).toString('hex')}` };
    const areas = await admin(a)('get', '/areas').expect(200);
    area = (areas.body.items ?? areas.body)[0].key;
    const doc = await request(app).get('/api/v1/openapi.json').expect(200);
    routes = [...managementRoutes(doc.body, problems), ...scimRoutesOf(scimRoutes(deps), problems)];
  });

  it('has a way to exercise every registered route', () => {
    assert.deepEqual(problems, []);
    assert.ok(routes.some((r) => r.api === 'scim') && routes.some((r) => r.api === 'management'));
  });

  /** Sends a route as tenant A with the ids of `t` (A's, some of them B's); `sent` is what the request carried. */
  function send(r: Route, t: Fixture, filters = true): { test: request.Test; sent: string } {
    let path = r.path;
    for (const { param, kind } of r.pathKinds) path = path.replace(r.api === 'scim' ? `:${param}` : `{${param}}`, encodeURIComponent(t[kind].id));
    for (const [param, value] of Object.entries(r.staticParams)) path = path.replace(r.api === 'scim' ? `:${param}` : `{${param}}`, encodeURIComponent(value));
    const method = r.method as 'get' | 'post' | 'put' | 'patch' | 'delete';
    const query = !filters ? {} : r.scimQuery ? r.scimQuery(t) : Object.fromEntries(Object.entries(r.queryKinds).map(([name, kind]) => [name, t[kind].id]));
    const raw = r.raw?.(t);
    const body = raw ? raw.text : r.body ? JSON.stringify(r.body(t)) : undefined;
    const sent = [path, JSON.stringify(query), body ?? ''].join('\n');
    const auth = r.api === 'scim' ? { Authorization: `Bearer ${a.scimToken}`, Accept: 'application/scim+json' } : AS_USER.has(r.operationId ?? '') ? userAuth : a.admin;
    const test = request(app)[method](`${r.api === 'scim' ? '/scim/v2' : '/api/v1'}${path}`).set(auth).query(query);
    if (body === undefined) return { test, sent };
    const type = raw ? raw.type : r.api === 'scim' ? 'application/scim+json' : 'application/json';
    return { test: test.set('Content-Type', type).send(body), sent };
  }

  it("answers A's requests naming B's ids like ids that never existed, changes nothing of B's and shows nothing of B's", async () => {
    const kindsUsed = [...new Set(routes.flatMap(kindsOf))];
    const fa = await build(a, marker.a, kindsUsed);
    const fb = await build(b, marker.b, kindsUsed);
    const key = await admin(a)('post', '/api-keys').send({ kind: 'admin', name: 'a person', userId: fa.user.id }).expect(201);
    userAuth = { Authorization: `Bearer ${key.body.token}` };
    const values = (o: Obj) => [o.id, o.name, o.email].filter((x): x is string => Boolean(x));
    // Everything of B's that must never reach A: ids, names, emails, and the marker in every name.
    const secrets = new Set([b.tenant.id, b.tenant.slug, marker.b, ...Object.values(fb).flatMap(values)]);
    const failures: string[] = [];
    const tables = await tenantTables(deps.db.knex);
    const snapshot = (tenantId: string) => tenantRows(deps.db.knex, tables, tenantId);
    let requests = 0;
    const started = Date.now();

    const answer = async (route: Route, t: Fixture, filters = true) => {
      requests++;
      const { test, sent } = send(route, t, filters);
      const res = await test;
      return { res, sent, text: `${JSON.stringify(res.headers)}\n${res.text ?? ''}` };
    };
    /** Fails the answer if it carries any of B's data other than what the request itself sent. */
    const shows = (label: string, res: request.Response, text: string, sent: string[]) => {
      let rest = text;
      for (const v of sent) rest = rest.split(v).join('');
      const leaked = [...secrets].filter((x) => rest.includes(x));
      if (leaked.length) failures.push(`${label}: the answer (${res.status}) shows B's ${leaked.join(', ')}: ${text.slice(0, 2000)}`);
    };
    /** An answer with what differs between two runs of one request blanked out. */
    const normalized = (res: request.Response, swapped: string[]) => {
      let text = res.text ?? '';
      for (const v of swapped) text = text.split(v).join('<swapped>');
      text = text.replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '<uuid>').replace(/q\d+q/g, '<seq>');
      // A rule's position is the count of rules before it, which grows with every run.
      text = text.replace(/"position":\d+/g, '"position":<n>');
      return `${res.status} ${text.replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g, '<time>')}`;
    };

    /** The route with A's own ids: it works (so a 404 given to B's id is not that of a broken request). */
    const control = async (route: Route, own: Fixture) => {
      const beforeB = await snapshot(b.tenant.id);
      const { res, text } = await answer(route, own);
      // 409: the request found its object in a state that refuses it (a job already finished).
      if (route.control ? res.status !== route.control : res.status >= 400 && res.status !== 409) {
        failures.push(`${route.label}: expected ${route.control ?? 'a success or 409'}, got ${res.status} ${res.text}`);
      }
      shows(route.label, res, text, []);
      const changedB = rowChanges(beforeB, await snapshot(b.tenant.id));
      if (changedB) failures.push(`${route.label}: tenant B changed: ${changedB}`);
    };

    // Reads first, while A's rows hold nothing that came from B (see the phantom below), and
    // lists once more without their filters: all of A's items, none of B's.
    for (const route of routes.filter((r) => r.method === 'get')) {
      await control(route, fa);
      if (Object.keys(route.queryKinds).length || route.scimQuery) {
        const { res, text } = await answer(route, fa, false);
        if (res.status !== 200) failures.push(`${route.label} without filters: expected 200, got ${res.status} ${res.text}`);
        shows(`${route.label} without filters`, res, text, []);
      }
    }

    // Snapshots carry over from one request to the next while nothing else writes.
    let lastA = await snapshot(a.tenant.id);
    let lastB = await snapshot(b.tenant.id);
    for (const route of routes) {
      const kinds = kindsOf(route);
      const cases = kinds.length > 1 ? [...kinds.map((k) => [k]), kinds] : kinds.map((k) => [k]);
      for (const swapped of cases) {
        const mixed = { ...fa } as Fixture;
        for (const k of swapped) mixed[k] = fb[k];
        const label = `${route.label} with B's ${swapped.join(' + ')}`;
        const [beforeA, beforeB] = [lastA, lastB];
        const { res, text, sent: request } = await answer(route, mixed);
        // B's values this request carried: the answer may name them back, and nothing else of B's.
        const sent = swapped.flatMap((k) => values(fb[k])).filter((v) => request.includes(v));
        const [afterA, afterB] = await Promise.all([snapshot(a.tenant.id), snapshot(b.tenant.id)]);
        [lastA, lastB] = [afterA, afterB];
        const inPath = route.pathKinds.some((p) => swapped.includes(p.kind));
        // What a request naming B's ids answers: 404 for an id in the path; for one in a body or
        // query 404/422 (400 where a body's ids are checked with its fields) naming it.
        let verdict = '';
        if (route.bulk) {
          const ops = (res.body?.Operations ?? []) as { status: string }[];
          const body = route.body!(mixed) as { Operations: unknown[] };
          body.Operations.forEach((op, i) => {
            const touchesB = sent.some((v) => JSON.stringify(op).includes(v));
            if (touchesB && ![400, 404].includes(Number(ops[i]?.status))) verdict += `bulk operation ${i} answered ${ops[i]?.status}; `;
          });
          if (res.status !== 200) verdict += `${res.status} ${res.text}`;
          if (verdict) failures.push(`${label}: ${verdict}`);
        } else {
          if (inPath) {
            if (res.status !== 404) verdict = `expected 404, got ${res.status} ${res.text}`;
          } else if (![400, 404, 422].includes(res.status)) verdict = `expected 400/404/422, got ${res.status} ${res.text}`;
          else if (!sent.some((v) => res.text.includes(v))) verdict = `${res.status} does not name the unknown id: ${res.text}`;
          if (verdict) {
            // Otherwise B's object must be answered exactly as one that never existed (an access
            // check denies an unknown user; a SCIM manager may name a user not provisioned yet).
            const phantom = { ...fa } as Fixture;
            for (const k of swapped) {
              const id = randomUUID();
              phantom[k] = { id, name: `never ${id}`, email: `never-${id}@nowhere.example.com` };
            }
            const unknown = await answer(route, phantom);
            lastA = await snapshot(a.tenant.id);
            const unknownValues = swapped.flatMap((k) => values(phantom[k])).filter((v) => unknown.sent.includes(v));
            if (normalized(unknown.res, unknownValues) !== normalized(res, sent)) {
              failures.push(`${label}: ${verdict} (an id that never existed gets ${unknown.res.status} ${unknown.res.text})`);
            } else if (rowChanges(beforeA, afterA)) {
              // A now holds B's id as its own opaque value (a rule's match, a manager): A's
              // answers may echo it from here on.
              for (const v of sent) secrets.delete(v);
            }
          } else {
            const changedA = rowChanges(beforeA, afterA);
            if (changedA) failures.push(`${label}: refused (${res.status}) but tenant A changed: ${changedA}`);
          }
        }
        shows(label, res, text, sent);
        const changedB = rowChanges(beforeB, afterB);
        if (changedB) failures.push(`${label}: tenant B changed: ${changedB}`);
      }
    }

    // Then the writes with A's own ids; deletions last, each on objects of its own.
    for (const route of routes.filter((r) => r.method !== 'get' && r.method !== 'delete')) await control(route, fa);
    for (const route of routes.filter((r) => r.method === 'delete')) await control(route, await build(a, marker.a, kindsOf(route)));
    console.log(`      ${routes.length} routes, ${requests} requests in ${Date.now() - started} ms`);
    assert.deepEqual(failures, []);
  });
});

