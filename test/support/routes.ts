import type { Express } from 'express';
import request from 'supertest';
import type { AppDeps } from '../../src/http/deps.js';
import { bind } from '../../src/connections/bindings.js';
import type { TestTenant } from './factories.js';
import { GROUP, oktaUser, scimClient, USER } from './scim.js';

/**
 * What walks over every registered route share (the tenant-isolation and the access walks): the
 * kinds of object a route names, a factory for each, a body for every operation that takes one,
 * and the management operations read off the OpenAPI document the registry generates.
 */
/** The kinds of object a route can name; each has a factory below that makes one in a tenant. */
export type Kind =
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

export interface Obj {
  id: string;
  name?: string;
  email?: string;
}
export type Fixture = Record<Kind, Obj>;

/** Which kind a path parameter names: `segment.param` first, then the parameter, then `id` after its segment. */
export const PATH_KINDS: Record<string, Kind> = {
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
export const STATIC_PARAMS: Record<string, string> = {
  'ResourceTypes.name': 'User',
  'Schemas.id': USER,
};

/** Query parameters that take an id, by name; any other `…Id` parameter fails the test. */
export const QUERY_KINDS: Record<string, Kind> = {
  userId: 'user',
  groupId: 'group',
  parentId: 'otherGroup',
  templateId: 'roleTemplate',
  createdBy: 'user',
  entityId: 'user',
  actorId: 'apiKey',
  reassign: 'otherRoleTemplate',
};

export type Body = (t: Fixture) => unknown;

/** A JSON body for every management operation that takes one, by operationId. */
export const BODIES: Record<string, Body> = {
  updateTenant: () => ({ jitProvisioning: false }),
  updateUser: (t) => ({ templateId: t.roleTemplate.id }),
  setUserPermissions: () => ({ areas: {} }),
  checkAreas: (t) => ({ userId: t.user.id, area: catalogueArea.key, action: 'view' }),
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
  createSsoConnection: () => ({
    protocol: 'oidc',
    name: `idp ${seq()}`,
    enabled: false,
    issuer: 'https://idp.a.example.com',
    clientId: 'c',
    clientSecret: 's',
  }),
  updateSsoConnection: () => ({ name: `idp ${seq()}` }),
};

/** Bodies of operations that read their own stream (CSV imports). */
export const RAW_BODIES: Record<string, (t: Fixture) => { type: string; text: string }> = {
  importGroupMembers: (t) => ({
    type: 'text/csv',
    text: `Name,Email,Group\nSomeone,${t.user.email},${t.group.name}\n`,
  }),
  importAgentGrants: (t) => ({
    type: 'text/csv',
    text: `AgentId,GroupId,Permission\n${t.agent.id},${t.group.id},VIEW_AND_USE\n`,
  }),
};

let counter = 0;
/** A unique part of a name, which comparisons of two answers blank out (see `normalized`). */
export const seq = () => `q${++counter}q`;
/** An area of the catalogue, which a walk reads at its start (area checks name one). */
export const catalogueArea = { key: '' };

/** A rule whose match names an IdP group by id (SCIM) or a connection, and whose actions name A's or B's objects. */
function ruleBody(t: Fixture, name: string, match: 'idpGroup' | 'connection') {
  return {
    name,
    enabled: true,
    match:
      match === 'idpGroup'
        ? { source: 'scim', field: 'id', operator: 'equals', value: t.idpGroup.id }
        : {
            source: 'connection',
            connectionId: t.ssoConnection.id,
            field: 'displayName',
            operator: 'equals',
            value: 'Engineering',
          },
    actions: {
      groups: [{ groupId: t.group.id, role: 'member' }],
      agents: [{ agentId: t.agent.id, permission: 'view_use' }],
    },
  };
}

/** A route, the kinds of object it names, and how to exercise it. */
export interface Route {
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

export interface OpenApiOperation {
  operationId: string;
  security?: unknown[];
  parameters?: { name: string; in: string }[];
  requestBody?: { content: Record<string, unknown> };
}

/** Every authenticated management operation, from the document the registry generates. */
export function managementRoutes(
  doc: { paths: Record<string, Record<string, OpenApiOperation>> },
  problems: string[],
): Route[] {
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
        else if (/Id$|By$/.test(p.name))
          problems.push(`${label}: query parameter ${p.name} looks like an id but has no kind in QUERY_KINDS`);
      }
      const types = Object.keys(op.requestBody?.content ?? {});
      const route: Route = {
        api: 'management',
        method,
        path,
        label,
        operationId: op.operationId,
        pathKinds: pathKinds.kinds,
        staticParams: pathKinds.statics,
        queryKinds,
      };
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

export function paramKinds(path: string, pattern: RegExp, label: string, problems: string[]) {
  const kinds: { param: string; kind: Kind }[] = [];
  const statics: Record<string, string> = {};
  const segments = path.split('/');
  for (const m of path.matchAll(pattern)) {
    const param = m[1]!;
    const at = segments.indexOf(m[0]);
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
export function kindsRead(build: ((t: Fixture) => unknown) | undefined): Kind[] {
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

export function kindsOf(r: Route): Kind[] {
  return [
    ...new Set([
      ...r.pathKinds.map((p) => p.kind),
      ...Object.values(r.queryKinds),
      ...kindsRead(r.body),
      ...kindsRead(r.raw),
      ...kindsRead(r.scimQuery),
    ]),
  ];
}

/** Makes objects of each kind in a tenant through the public APIs (a sign-in binding straight in the database). */
export function fixtures(app: Express, deps: AppDeps): (t: TestTenant, m: string, kinds: Kind[]) => Promise<Fixture> {
  const admin = (t: TestTenant) => (method: 'get' | 'post' | 'patch' | 'put' | 'delete', path: string) =>
    request(app)[method](`/api/v1${path}`).set(t.admin);
  const created = (res: request.Response, what: string): string => {
    if (res.status >= 300 || typeof res.body?.id !== 'string')
      throw new Error(`factory ${what}: ${res.status} ${res.text}`);
    return res.body.id as string;
  };

  /** Makes one object of a kind in a tenant through the public APIs, with the objects it needs. */
  const factories: Record<Kind, (t: TestTenant, get: (k: Kind) => Promise<Obj>, m: string) => Promise<Obj>> = {
    user: async (t, _get, m) => {
      const email = `person-${seq()}@${m}.example.com`;
      return {
        id: created(
          await scimClient(app, t.scimToken).post('/Users', oktaUser(email, { externalId: `ext-${m}-${seq()}` })),
          'user',
        ),
        email,
      };
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
      const members = await admin(t)('post', `/groups/${id}/members`).send({
        userIds: [(await get('user')).id],
        role: 'manager',
      });
      if (members.status >= 300) throw new Error(`factory group members: ${members.status} ${members.text}`);
      return { id, name };
    },
    otherGroup: async (t, _get, m) => {
      const name = `${m} other group ${seq()}`;
      return { id: created(await admin(t)('post', '/groups').send({ name }), 'otherGroup'), name };
    },
    agent: async (t, get, m) => {
      const name = `${m} agent ${seq()}`;
      return {
        id: created(
          await admin(t)('post', '/agents').send({ name, accessType: 'groups', createdBy: (await get('user')).id }),
          'agent',
        ),
        name,
      };
    },
    grant: async (t, get) => {
      const [agent, group] = [await get('agent'), await get('group')];
      return {
        id: created(
          await admin(t)('post', `/agents/${agent.id}/grants`).send({ groupId: group.id, permission: 'view_use' }),
          'grant',
        ),
      };
    },
    dataSource: async (t, get, m) => {
      const [agent, group] = [await get('agent'), await get('group')];
      const name = `${m} source ${seq()}`;
      return {
        id: created(
          await admin(t)('post', `/agents/${agent.id}/data-sources`).send({
            name,
            access: 'groups',
            groupIds: [group.id],
          }),
          'dataSource',
        ),
        name,
      };
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
      return {
        id: created(await admin(t)('post', '/role-templates').send({ name, areas: {} }), 'otherRoleTemplate'),
        name,
      };
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
        actions: {
          groups: [{ groupId: group.id, role: 'member' }],
          agents: [{ agentId: agent.id, permission: 'view_use' }],
        },
      });
      if (res.status >= 300) throw new Error(`factory mappingRule: ${res.status} ${res.text}`);
      return { id: String(res.body.rule?.id ?? res.body.id), name };
    },
    idpGroup: async (t, get, m) => {
      const name = `${m} idp group ${seq()}`;
      const res = await scimClient(app, t.scimToken).post('/Groups', {
        schemas: [GROUP],
        displayName: name,
        members: [{ value: (await get('user')).id }],
      });
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
      if (!imported)
        throw new Error(
          `factory job: neither a reconcile nor a large import made a job: ${res.status} ${res.text.slice(0, 500)}`,
        );
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
  return build;
}
