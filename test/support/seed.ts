import { randomUUID } from 'node:crypto';
import type { Express } from 'express';
import { insertChunked } from '../../src/db/batch.js';
import { testDb } from './db.js';
import type { TestTenant } from './factories.js';
import { scimClient, USER } from './scim.js';

/**
 * `n` users of a tenant, made fast: one through SCIM, the rest copies of its row inserted in
 * bulk (what an HTTP seed of thousands would take minutes to do). Returns their ids, first the
 * SCIM-made one.
 */
export async function seedUsers(app: Express, t: TestTenant, n: number, prefix = 'u'): Promise<string[]> {
  const knex = (await testDb()).knex;
  const first = (
    await scimClient(app, t.scimToken)
      .post('/Users', { schemas: [USER], userName: `${prefix}-seed@x.io` })
      .expect(201)
  ).body.id as string;
  const row = await knex('users').where({ tenant_id: t.tenant.id, id: first }).first();
  const rows = Array.from({ length: n - 1 }, (_, i) => ({
    ...row,
    id: randomUUID(),
    user_name: `${prefix}${i}@x.io`,
    user_name_key: `${prefix}${i}@x.io`,
    email: null,
    email_key: null,
    external_id: null,
  }));
  await insertChunked(knex, 'users', rows);
  return [first, ...rows.map((r) => r.id as string)];
}

/** Puts `memberIds` (users) into a SCIM group directly. */
export async function seedIdpMembers(t: TestTenant, groupId: string, memberIds: string[]): Promise<void> {
  const knex = (await testDb()).knex;
  const now = Date.now();
  await insertChunked(
    knex,
    'idp_group_members',
    memberIds.map((id) => ({
      tenant_id: t.tenant.id,
      group_id: groupId,
      member_id: id,
      member_type: 'User',
      created_at: now,
    })),
  );
}

/** Copies of one row of `table` (found by `where`), each changed by `vary`, inserted in bulk. */
export async function cloneRows(
  table: string,
  where: Record<string, unknown>,
  n: number,
  vary: (i: number) => Record<string, unknown>,
): Promise<Record<string, unknown>[]> {
  const knex = (await testDb()).knex;
  const row = await knex(table).where(where).first();
  if (!row) throw new Error(`no ${table} row to copy`);
  const rows = Array.from({ length: n }, (_, i) => ({ ...row, ...vary(i) }));
  await insertChunked(knex, table, rows);
  return rows;
}
