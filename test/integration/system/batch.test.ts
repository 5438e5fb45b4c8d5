import assert from 'node:assert/strict';
import { recordEvents } from '../../../src/audit/record.js';
import { systemCtx } from '../../../src/context.js';
import { insertBatches } from '../../../src/db/batch.js';
import { dialectOf } from '../../../src/db/dialect.js';
import { testDb } from '../../support/db.js';
import { buildTenant } from '../../support/factories.js';

describe('db/batch: statements within the database limits', () => {
  it('writes audit events whose values together exceed MySQL max_allowed_packet (16 MiB on MariaDB)', async function () {
    this.timeout(60_000);
    const db = await testDb();
    const t = await buildTenant();
    // 24 events of 1 MiB each: one INSERT would be a 24 MiB packet.
    const big = 'x'.repeat(1024 * 1024);
    const events = Array.from({ length: 24 }, (_, i) => ({
      event: 'test.large',
      entity: { type: 'test', id: String(i) },
      before: null,
      after: { big },
    }));
    await db.tx((trx) => recordEvents(trx, systemCtx(t.tenant.id), events));
    const r = await db
      .knex('audit_events')
      .where({ tenant_id: t.tenant.id, event: 'test.large' })
      .count({ n: '*' })
      .first();
    assert.equal(Number(r!.n), 24);
  });

  it('sizes INSERTs by rows, bound values and (MySQL) bytes', async () => {
    const d = dialectOf((await testDb()).knex);
    const narrow = Array.from({ length: 1201 }, (_, i) => ({ a: i, b: 'v' }));
    assert.deepEqual(
      insertBatches(d, narrow).map((b) => b.length),
      [500, 500, 201],
    );
    const wide = [Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`c${i}`, i]))];
    const wideRows = Array.from({ length: 600 }, () => wide[0]!);
    assert.ok(insertBatches(d, wideRows).every((b) => b.length * 40 <= d.maxBindings));
    const large = Array.from({ length: 10 }, () => ({ v: 'y'.repeat(1024 * 1024) }));
    const sizes = insertBatches(d, large).map((b) => b.length);
    assert.equal(
      sizes.reduce((a, b) => a + b, 0),
      10,
    );
    if (d.name === 'mysql') assert.ok(sizes.every((n) => n <= 4));
  });
});
