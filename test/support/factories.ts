import { randomBytes } from 'node:crypto';
import { createTenant } from '../../src/provisioning/tenants.js';
import { issueToken, type Tenant } from '../../src/tenants/store.js';
import { testDb } from './db.js';

export interface TestTenant {
  tenant: Tenant;
  scimToken: string;
  adminKey: string;
  scim: { Authorization: string };
  admin: { Authorization: string };
}

/** A fresh tenant with a SCIM token and an admin key: isolation without truncation. */
export async function buildTenant(opts: { userLimit?: number | null; slug?: string } = {}): Promise<TestTenant> {
  const db = await testDb();
  const tenant = await createTenant(db.knex, {
    slug: opts.slug ?? `t-${randomBytes(5).toString('hex')}`,
    userLimit: opts.userLimit ?? null,
  });
  const scim = await issueToken(db.knex, tenant.id, { kind: 'scim' });
  const admin = await issueToken(db.knex, tenant.id, { kind: 'admin' });
  return {
    tenant,
    scimToken: scim.token,
    adminKey: admin.token,
    scim: { Authorization: `Bearer ${scim.token}` },
    admin: { Authorization: `Bearer ${admin.token}` },
  };
}
