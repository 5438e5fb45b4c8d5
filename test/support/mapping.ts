import type { TestTenant } from './factories.js';
import { testDb } from './db.js';

/**
 * An enabled mapping rule row at version 1, for tests that write derived rows by hand: a
 * derived row counts only while its rule exists, is enabled and is at the row's rule_version.
 */
export async function liveRuleRow(t: TestTenant, id: string): Promise<void> {
  const db = await testDb();
  const now = Date.now();
  await db
    .knex('mapping_rules')
    .insert({
      tenant_id: t.tenant.id,
      id,
      name: `rule ${id}`,
      description: null,
      enabled: true,
      position: 1,
      match_source: 'scim',
      match_field: 'displayName',
      match_operator: 'equals',
      match_value: `never-${id}`,
      actions_json: JSON.stringify({ groups: [], agents: [] }),
      version: 1,
      created_at: now,
      updated_at: now,
    })
    .onConflict(['tenant_id', 'id'])
    .ignore();
}
