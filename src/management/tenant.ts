import type { Tenant } from '../tenants/store.js';

/** The caller's tenant as the management API shows it. */
export function presentTenant(t: Tenant) {
  return {
    id: t.id,
    slug: t.slug,
    name: t.name,
    timeZone: t.timeZone,
    jitProvisioning: t.jitProvisioning,
    userLimit: t.userLimit,
    createdAt: new Date(t.createdAt).toISOString(),
  };
}
