import type { Express } from 'express';
import request from 'supertest';
import type { TestTenant } from './factories.js';
import { GROUP, PATCH_OP, scimClient } from './scim.js';

/** A local group through the management API. */
export async function createGroup(app: Express, t: TestTenant, name: string, parentId?: string): Promise<string> {
  const res = await request(app)
    .post('/api/v1/groups')
    .set(t.admin)
    .send({ name, ...(parentId ? { parentId } : {}) })
    .expect(201);
  return res.body.id;
}

export async function createAgent(
  app: Express,
  t: TestTenant,
  name: string,
  accessType: 'organization' | 'groups' | 'private' = 'groups',
  createdBy?: string,
): Promise<string> {
  const res = await request(app)
    .post('/api/v1/agents')
    .set(t.admin)
    .send({ name, accessType, ...(createdBy ? { createdBy } : {}) })
    .expect(201);
  return res.body.id;
}

export async function addMembers(
  app: Express,
  t: TestTenant,
  groupId: string,
  userIds: string[],
  role: 'member' | 'manager' = 'member',
): Promise<void> {
  await request(app)
    .post(`/api/v1/groups/${groupId}/members`)
    .set(t.admin)
    .send({ userIds, role })
    .expect((r) => {
      if (r.status >= 300) throw new Error(`add members: ${r.status} ${JSON.stringify(r.body)}`);
    });
}

export async function grant(
  app: Express,
  t: TestTenant,
  agentId: string,
  body: {
    groupId?: string;
    userId?: string;
    permission: 'view_use' | 'edit';
    startDate?: string;
    endDate?: string;
    timeZone?: string;
  },
): Promise<string> {
  const res = await request(app).post(`/api/v1/agents/${agentId}/grants`).set(t.admin).send(body).expect(201);
  return res.body.id;
}

/** The access check for one user and agent, optionally at another instant. */
export async function check(app: Express, t: TestTenant, agentId: string, userId: string, at?: string) {
  const res = await request(app)
    .get(`/api/v1/access/agents/${agentId}/users/${userId}`)
    .query(at ? { at } : {})
    .set(t.admin)
    .expect(200);
  return res.body as {
    view: boolean;
    use: boolean;
    edit: boolean;
    delete: boolean;
    managePermissions: boolean;
    level: string;
    dataSources: { id: string; name: string }[];
    reasons: string[];
  };
}

/** An IdP group pushed over SCIM with these user members. */
export async function idpGroup(
  app: Express,
  t: TestTenant,
  displayName: string,
  members: string[] = [],
  externalId?: string,
): Promise<string> {
  const res = await scimClient(app, t.scimToken)
    .post('/Groups', {
      schemas: [GROUP],
      displayName,
      ...(externalId ? { externalId } : {}),
      members: members.map((value) => ({ value })),
    })
    .expect(201);
  return res.body.id;
}

export async function idpPatch(app: Express, t: TestTenant, groupId: string, ...Operations: unknown[]): Promise<void> {
  await scimClient(app, t.scimToken)
    .patch(`/Groups/${groupId}`, { schemas: [PATCH_OP], Operations })
    .expect((r) => {
      if (r.status >= 300) throw new Error(`SCIM PATCH: ${r.status} ${JSON.stringify(r.body)}`);
    });
}
