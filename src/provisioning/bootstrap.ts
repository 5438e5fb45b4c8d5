import type { Knex } from 'knex';
import { isUniqueViolation } from '../db/errors.js';
import { issueToken, type Tenant } from '../tenants/store.js';
import { createTenant } from './tenants.js';

export interface FirstStartCredentials {
  tenant: Tenant;
  scimToken: string;
  adminApiKey: string;
}

const MARK = 'bootstrapped_at';

/**
 * On the very first start against an empty database, creates the `default` tenant with a SCIM
 * token and an admin API key. A marker row makes it happen once, even when several processes
 * start together or every tenant is later removed.
 */
export async function firstStart(knex: Knex, now = Date.now()): Promise<FirstStartCredentials | undefined> {
  try {
    return await knex.transaction(async (trx) => {
      if (await trx('roster_meta').where({ key: MARK }).first()) return undefined;
      await trx('roster_meta').insert({ key: MARK, value: String(now) });
      const existing = await trx('tenants').count({ n: '*' }).first();
      if (Number(existing?.n ?? 0) > 0) return undefined;
      const tenant = await createTenant(trx, { slug: 'default', name: 'Default' }, now);
      const scim = await issueToken(trx, tenant.id, { kind: 'scim', name: 'First-start SCIM token' }, now);
      const admin = await issueToken(trx, tenant.id, { kind: 'admin', name: 'First-start admin API key' }, now);
      return { tenant, scimToken: scim.token, adminApiKey: admin.token };
    });
  } catch (err) {
    if (isUniqueViolation(err)) return undefined;
    throw err;
  }
}

export function firstStartBanner(c: FirstStartCredentials, publicBaseUrl: string): string {
  const lines = [
    'Roster created the tenant "default". These secrets are shown only this once; store them now.',
    '',
    `  SCIM base URL     ${publicBaseUrl}/scim/v2`,
    `  SCIM token        ${c.scimToken}`,
    `  Admin API key     ${c.adminApiKey}`,
    '',
    'Try:',
    `  curl -H "Authorization: Bearer ${c.scimToken}" ${publicBaseUrl}/scim/v2/ServiceProviderConfig`,
    `  curl -H "Authorization: Bearer ${c.adminApiKey}" ${publicBaseUrl}/api/v1/tenant`,
  ];
  const width = Math.max(...lines.map((l) => l.length)) + 2;
  const bar = '='.repeat(width);
  return `\n${bar}\n${lines.map((l) => ` ${l}`).join('\n')}\n${bar}\n\n`;
}
