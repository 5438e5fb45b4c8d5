import assert from 'node:assert/strict';
import type { Request } from 'express';
import { RosterError } from '../../../src/errors.js';
import { logFailure, toRosterError } from '../../../src/http/error-common.js';
import { createLogger } from '../../../src/log.js';
import { dialectName, testDb } from '../../support/db.js';
import { buildTenant } from '../../support/factories.js';

function userRow(tenantId: string, over: Record<string, unknown>) {
  const now = Date.now();
  const id = `u-${Math.random().toString(36).slice(2)}`;
  return {
    tenant_id: tenantId,
    id,
    user_name: id,
    user_name_key: id,
    status: 'active',
    source: 'scim',
    scim_doc: '{}',
    created_at: now,
    updated_at: now,
    ...over,
  };
}

async function failure(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  assert.fail('the statement succeeded');
}

describe('database errors', () => {
  it('a logged database error names the driver code but carries no bound value', async () => {
    const db = await testDb();
    const t = await buildTenant();
    const secret = 'oidc-client-secret-4711';
    // NOT NULL on user_name: an error nobody translates, so it is logged whole as a 500.
    const err = await failure(() =>
      db.tx((trx) =>
        trx('users').insert(
          userRow(t.tenant.id, { user_name: null, email: secret, scim_doc: JSON.stringify({ secret }) }),
        ),
      ),
    );
    let logs = '';
    const log = createLogger('info', { write: (line: string) => void (logs += line) });
    logFailure({ log } as unknown as Request, err, toRosterError(err));
    assert.match(logs, dialectName === 'mysql' ? /ER_BAD_NULL_ERROR/ : /SQLITE_CONSTRAINT_NOTNULL/);
    assert.match(logs, /insert into `users`/);
    assert.ok(!logs.includes(secret), logs);
    assert.ok(!logs.includes(t.tenant.id), 'the tenant id bound in the statement was logged');
  });

  it('a duplicate on MariaDB keeps the key name but not the value in its message', async function () {
    if (dialectName !== 'mysql') this.skip();
    const db = await testDb();
    const t = await buildTenant();
    const name = 'duplicate.person@example.com';
    await db.knex('users').insert(userRow(t.tenant.id, { user_name: name, user_name_key: name }));
    const err = await failure(() =>
      db.tx((trx) => trx('users').insert(userRow(t.tenant.id, { user_name: name, user_name_key: name }))),
    );
    const known = toRosterError(err);
    assert.equal(known?.status, 409);
    const cause = known!.extra.cause as { message: string; sql?: string; sqlMessage?: string };
    assert.match(cause.message, /users_user_name_uq/);
    assert.ok(![cause.message, cause.sql, cause.sqlMessage].some((s) => s?.includes(name)), JSON.stringify(cause));
  });

  it('a value too long for its column on MariaDB is a 400 naming the column, not a 500', async function () {
    if (dialectName !== 'mysql') this.skip();
    const db = await testDb();
    const t = await buildTenant();
    const err = await failure(() =>
      db.tx((trx) => trx('users').insert(userRow(t.tenant.id, { external_id: 'x'.repeat(300) }))),
    );
    const known = toRosterError(err);
    assert.ok(known instanceof RosterError);
    assert.equal(known.status, 400);
    assert.equal(known.code, 'value_too_large');
    assert.deepEqual(
      known.extra.fields?.map((f) => f.path),
      ['external_id'],
    );
  });
});
