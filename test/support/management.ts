import type { Express } from 'express';
import request from 'supertest';
import type { TestTenant } from './factories.js';
import { oktaUser, scimClient } from './scim.js';

export interface TestUser {
  id: string;
  email: string;
  /** Headers of an admin key owned by this user: requests act as the user. */
  auth: { Authorization: string };
}

let seq = 0;

/**
 * A user provisioned over SCIM (active), given a role, a template and area settings through the
 * management API with the tenant's admin key, and holding a key of their own.
 */
export async function buildUser(
  app: Express,
  t: TestTenant,
  opts: {
    role?: 'admin' | 'member';
    areas?: Record<string, unknown>;
    templateId?: string | null;
    crmAccess?: boolean;
    email?: string;
  } = {},
): Promise<TestUser> {
  const email = opts.email ?? `person${++seq}-${Date.now()}@example.com`;
  const created = await scimClient(app, t.scimToken)
    .post('/Users', oktaUser(email, { externalId: `ext-${seq}` }))
    .expect(201);
  const id = created.body.id as string;
  const patch: Record<string, unknown> = {};
  if (opts.role) patch.role = opts.role;
  if (opts.templateId !== undefined) patch.templateId = opts.templateId;
  if (opts.crmAccess !== undefined) patch.crmAccess = opts.crmAccess;
  if (Object.keys(patch).length) await request(app).patch(`/api/v1/users/${id}`).set(t.admin).send(patch).expect(200);
  if (opts.areas)
    await request(app).put(`/api/v1/users/${id}/permissions`).set(t.admin).send({ areas: opts.areas }).expect(200);
  const key = await request(app)
    .post('/api/v1/api-keys')
    .set(t.admin)
    .send({ kind: 'admin', userId: id, name: `key of ${email}` })
    .expect(201);
  return { id, email, auth: { Authorization: `Bearer ${key.body.token}` } };
}

/** The id of one of the tenant's role templates by name (the four built-ins are always there). */
export async function templateId(app: Express, t: TestTenant, name: string): Promise<string> {
  const res = await request(app).get('/api/v1/role-templates').set(t.admin).expect(200);
  const found = res.body.items.find((x: { name: string }) => x.name === name);
  if (!found) throw new Error(`no template ${name}`);
  return found.id;
}

/** The tenant's audit events of one type, newest first. */
export async function auditEvents(app: Express, t: TestTenant, event: string) {
  const res = await request(app).get('/api/v1/audit-events').query({ event }).set(t.admin).expect(200);
  return res.body.items as {
    event: string;
    actor: { type: string; id: string | null; display: string | null };
    entity: { type: string; id: string | null; name: string | null };
    before: unknown;
    after: unknown;
  }[];
}
