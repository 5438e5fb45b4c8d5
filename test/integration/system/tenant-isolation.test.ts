import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import type { Express, Router } from 'express';
import request from 'supertest';
import { createApp } from '../../../src/app.js';
import type { AppDeps } from '../../../src/http/deps.js';
import { scimRoutes } from '../../../src/scim/routes.js';
import { testDeps } from '../../support/app.js';
import { dialectName } from '../../support/db.js';
import { buildTenant, type TestTenant } from '../../support/factories.js';
import { rowChanges, tenantRows, tenantTables } from '../../support/tenant-rows.js';
import { ENTERPRISE, GROUP, oktaUser, PATCH_OP, patchBody, USER } from '../../support/scim.js';
import {
  catalogueArea,
  fixtures,
  kindsOf,
  managementRoutes,
  paramKinds,
  seq,
  type Body,
  type Fixture,
  type Obj,
  type Route,
} from '../../support/routes.js';

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

/** Operations about the caller as a person: sent with a key of A's user instead of the tenant's admin key. */
const AS_USER = new Set(['getMe']);

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
  'POST /Users': {
    body: (t) => ({
      ...oktaUser(`new-${seq()}@a.example.com`),
      schemas: [USER, ENTERPRISE],
      [ENTERPRISE]: { manager: { value: t.user.id } },
    }),
  },
  'POST /Users/.search': {
    body: (t) => ({ schemas: ['urn:ietf:params:scim:api:messages:2.0:SearchRequest'], filter: `id eq "${t.user.id}"` }),
  },
  'GET /Users/:id': {},
  'PUT /Users/:id': { body: () => oktaUser(`replaced-${seq()}@a.example.com`) },
  'PATCH /Users/:id': { body: () => patchBody({ op: 'replace', path: 'displayName', value: 'Changed' }) },
  'DELETE /Users/:id': {},
  'GET /Groups': { query: (t) => ({ filter: `members.value eq "${t.user.id}"` }) },
  'POST /Groups': { body: (t) => ({ schemas: [GROUP], displayName: `idp ${seq()}`, members: [{ value: t.user.id }] }) },
  'POST /Groups/.search': {
    body: (t) => ({
      schemas: ['urn:ietf:params:scim:api:messages:2.0:SearchRequest'],
      filter: `id eq "${t.idpGroup.id}"`,
    }),
  },
  'GET /Groups/:id': {},
  'PUT /Groups/:id': {
    body: (t) => ({ schemas: [GROUP], displayName: t.idpGroup.name, members: [{ value: t.user.id }] }),
  },
  'PATCH /Groups/:id': { body: (t) => patchBody({ op: 'add', path: 'members', value: [{ value: t.user.id }] }) },
  'DELETE /Groups/:id': {},
  'POST /.search': {
    body: (t) => ({ schemas: ['urn:ietf:params:scim:api:messages:2.0:SearchRequest'], filter: `id eq "${t.user.id}"` }),
  },
  'POST /Bulk': {
    bulk: true,
    body: (t) => ({
      schemas: ['urn:ietf:params:scim:api:messages:2.0:BulkRequest'],
      Operations: [
        {
          method: 'PATCH',
          path: `/Users/${t.user.id}`,
          data: { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'displayName', value: 'Bulk' }] },
        },
        {
          method: 'PATCH',
          path: `/Groups/${t.idpGroup.id}`,
          data: { schemas: [PATCH_OP], Operations: [{ op: 'add', path: 'members', value: [{ value: t.user.id }] }] },
        },
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

/** Every SCIM endpoint, read off the router's own route table. */
function scimRoutesOf(router: Router, problems: string[]): Route[] {
  const stack = (router as unknown as { stack: { route?: { path: string; methods: Record<string, boolean> } }[] })
    .stack;
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
  let build: ReturnType<typeof fixtures>;

  const admin = (t: TestTenant) => (method: 'get' | 'post' | 'patch' | 'put' | 'delete', path: string) =>
    request(app)[method](`/api/v1${path}`).set(t.admin);

  before(async () => {
    deps = await testDeps();
    app = createApp(deps);
    build = fixtures(app, deps);
    a = await buildTenant();
    b = await buildTenant();
    marker = { a: `iso-a-${randomBytes(4).toString('hex')}`, b: `iso-b-${randomBytes(4).toString('hex')}` };
    const areas = await admin(a)('get', '/areas').expect(200);
    catalogueArea.key = (areas.body.items ?? areas.body)[0].key;
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
    for (const { param, kind } of r.pathKinds)
      path = path.replace(r.api === 'scim' ? `:${param}` : `{${param}}`, encodeURIComponent(t[kind].id));
    for (const [param, value] of Object.entries(r.staticParams))
      path = path.replace(r.api === 'scim' ? `:${param}` : `{${param}}`, encodeURIComponent(value));
    const method = r.method as 'get' | 'post' | 'put' | 'patch' | 'delete';
    const query = !filters
      ? {}
      : r.scimQuery
        ? r.scimQuery(t)
        : Object.fromEntries(Object.entries(r.queryKinds).map(([name, kind]) => [name, t[kind].id]));
    const raw = r.raw?.(t);
    const body = raw ? raw.text : r.body ? JSON.stringify(r.body(t)) : undefined;
    const sent = [path, JSON.stringify(query), body ?? ''].join('\n');
    const auth =
      r.api === 'scim'
        ? { Authorization: `Bearer ${a.scimToken}`, Accept: 'application/scim+json' }
        : AS_USER.has(r.operationId ?? '')
          ? userAuth
          : a.admin;
    const test = request(app)
      [method](`${r.api === 'scim' ? '/scim/v2' : '/api/v1'}${path}`)
      .set(auth)
      .query(query);
    if (body === undefined) return { test, sent };
    const type = raw ? raw.type : r.api === 'scim' ? 'application/scim+json' : 'application/json';
    return { test: test.set('Content-Type', type).send(body), sent };
  }

  it("answers A's requests naming B's ids like ids that never existed, changes nothing of B's and shows nothing of B's", async () => {
    const kindsUsed = [...new Set(routes.flatMap(kindsOf))];
    const fa = await build(a, marker.a, kindsUsed);
    const fb = await build(b, marker.b, kindsUsed);
    const key = await admin(a)('post', '/api-keys')
      .send({ kind: 'admin', name: 'a person', userId: fa.user.id })
      .expect(201);
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
      if (leaked.length)
        failures.push(`${label}: the answer (${res.status}) shows B's ${leaked.join(', ')}: ${text.slice(0, 2000)}`);
    };
    /** An answer with what differs between two runs of one request blanked out. */
    const normalized = (res: request.Response, swapped: string[]) => {
      let text = res.text ?? '';
      for (const v of swapped) text = text.split(v).join('<swapped>');
      text = text
        .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '<uuid>')
        .replace(/q\d+q/g, '<seq>');
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
        if (res.status !== 200)
          failures.push(`${route.label} without filters: expected 200, got ${res.status} ${res.text}`);
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
            if (touchesB && ![400, 404].includes(Number(ops[i]?.status)))
              verdict += `bulk operation ${i} answered ${ops[i]?.status}; `;
          });
          if (res.status !== 200) verdict += `${res.status} ${res.text}`;
          if (verdict) failures.push(`${label}: ${verdict}`);
        } else {
          if (inPath) {
            if (res.status !== 404) verdict = `expected 404, got ${res.status} ${res.text}`;
          } else if (![400, 404, 422].includes(res.status))
            verdict = `expected 400/404/422, got ${res.status} ${res.text}`;
          else if (!sent.some((v) => res.text.includes(v)))
            verdict = `${res.status} does not name the unknown id: ${res.text}`;
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
              failures.push(
                `${label}: ${verdict} (an id that never existed gets ${unknown.res.status} ${unknown.res.text})`,
              );
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
    for (const route of routes.filter((r) => r.method === 'delete'))
      await control(route, await build(a, marker.a, kindsOf(route)));
    console.log(`      ${routes.length} routes, ${requests} requests in ${Date.now() - started} ms`);
    assert.deepEqual(failures, []);
  });
});
