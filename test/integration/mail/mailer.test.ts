import assert from 'node:assert/strict';
import { createLogger } from '../../../src/log.js';
import { createMailer, type Mailer } from '../../../src/mail/mailer.js';
import { enqueueMail, getOutboxMail, MAX_ATTEMPTS, type OutgoingMail } from '../../../src/mail/outbox.js';
import type { Db } from '../../../src/db/knex.js';
import { testConfig } from '../../support/app.js';
import { testDb } from '../../support/db.js';
import { buildTenant } from '../../support/factories.js';
import { SMTP_PASS, smtpServer } from '../../support/smtp.js';

const PASS = SMTP_PASS;

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const raw: string[] = [];
  const logger = createLogger('info', {
    write(s: string) {
      raw.push(s);
      lines.push(JSON.parse(s) as Record<string, unknown>);
    },
  });
  return { logger, lines, raw };
}

const address = (label: string) => `${label}-${Math.random().toString(36).slice(2, 10)}@example.com`;

function invitation(to: string, link = 'https://roster.test/invite/abc123'): OutgoingMail {
  return {
    kind: 'invitation',
    to,
    subject: 'You are invited to Acme',
    text: `Hello,\n\nyou have been invited to Acme. Accept here:\n${link}\n\nThe link is valid for 7 days.\n`,
  };
}

async function row(db: Db, id: string) {
  const r = await db.knex('mail_outbox').where({ id }).first();
  assert.ok(r, `no outbox row ${id}`);
  return r as { sent_at: unknown; attempts: unknown; last_error: unknown };
}

describe('mailer (transactional outbox)', () => {
  let db: Db;
  let smtp: Awaited<ReturnType<typeof smtpServer>>;
  const mailers: Mailer[] = [];
  const tenants: string[] = [];

  const mailer = (
    env: Record<string, string>,
    opts: { logger?: ReturnType<typeof createLogger>; now?: () => number } = {},
  ) => {
    const m = createMailer({
      config: testConfig(env),
      db,
      logger: opts.logger ?? createLogger('silent'),
      retryIntervalMs: 0,
      now: opts.now,
    });
    mailers.push(m);
    return m;
  };
  const tenant = async () => {
    const t = await buildTenant();
    tenants.push(t.tenant.id);
    return t.tenant.id;
  };

  before(async () => {
    db = await testDb();
    smtp = await smtpServer();
  });
  after(async () => {
    for (const m of mailers) await m.close();
    await smtp.close();
    // Leave nothing of ours pending for suites that look at the outbox.
    await db.knex('mail_outbox').whereIn('tenant_id', tenants).delete();
  });

  it('delivers a committed mail through SMTP with from, to, subject and body, and marks it sent', async () => {
    const tenantId = await tenant();
    const to = address('smtp');
    const id = await db.tx((trx) => enqueueMail(trx, tenantId, invitation(to)));
    const log = capture();
    const m = mailer({ SMTP_URL: smtp.url, MAIL_FROM: 'Acme Roster <roster@acme.test>' }, { logger: log.logger });

    const sent = await m.deliverPending();
    assert.ok(sent >= 1);
    const got = smtp.to(to);
    assert.equal(got.length, 1);
    const mail = got[0]!;
    assert.equal(mail.from, 'roster@acme.test');
    assert.deepEqual(mail.rcpt, [to]);
    assert.equal(mail.headers.get('from'), 'Acme Roster <roster@acme.test>');
    assert.equal(mail.headers.get('to'), to);
    assert.equal(mail.headers.get('subject'), 'You are invited to Acme');
    assert.equal(mail.headers.get('message-id'), `<${id}@acme.test>`);
    assert.match(mail.headers.get('content-type') ?? '', /^text\/plain/);
    assert.match(mail.body, /Accept here:\nhttps:\/\/roster\.test\/invite\/abc123\n/);

    const r = await row(db, id);
    assert.ok(Number(r.sent_at) > 0);
    assert.equal(Number(r.attempts), 1);
    assert.equal(r.last_error, null);
    const shown = await getOutboxMail(db.knex, id);
    assert.equal(shown?.state, 'sent');

    assert.equal(await m.deliverPending(), 0, 'a sent mail is not sent again');
    assert.equal(smtp.to(to).length, 1);
    const text = log.raw.join('');
    assert.ok(!text.includes(PASS) && !text.includes(encodeURIComponent(PASS)), 'the SMTP password reached the log');
    assert.ok(log.lines.some((l) => l.msg === 'mails are sent through SMTP' && String(l.smtp).includes('***')));
  });

  it('sends nothing for a rolled-back transaction', async () => {
    const tenantId = await tenant();
    const to = address('rollback');
    let id: string | undefined;
    await assert.rejects(
      db.tx(async (trx) => {
        id = await enqueueMail(trx, tenantId, invitation(to));
        throw new Error('the invite failed after the mail was queued');
      }),
      /invite failed/,
    );
    assert.ok(id);
    assert.equal(await getOutboxMail(db.knex, id), undefined);
    await mailer({ SMTP_URL: smtp.url }).deliverPending();
    assert.equal(smtp.to(to).length, 0);
  });

  it('records a refused delivery, waits before retrying, and delivers once the server accepts', async () => {
    const tenantId = await tenant();
    const to = address('refused');
    const other = address('fine');
    let clock = Date.now();
    const id = await db.tx((trx) => enqueueMail(trx, tenantId, invitation(to), clock));
    const otherId = await db.tx((trx) => enqueueMail(trx, tenantId, invitation(other), clock));
    smtp.reject.add(to);
    const m = mailer({ SMTP_URL: smtp.url }, { now: () => clock });

    await m.deliverPending();
    let r = await row(db, id);
    assert.equal(r.sent_at, null);
    assert.equal(Number(r.attempts), 1);
    const failed = await getOutboxMail(db.knex, id);
    assert.equal(failed?.state, 'pending');
    assert.match(failed?.lastError ?? '', /550/);
    assert.match(failed?.lastError ?? '', /unavailable/);
    assert.equal(failed?.lastAttemptAt, clock);
    assert.ok(!(failed?.lastError ?? '').includes('\n'));
    assert.equal(smtp.to(other).length, 1, 'one refused recipient does not hold up the others');
    assert.ok(Number((await row(db, otherId)).sent_at) > 0);

    // Not due yet: the retry waits for its backoff.
    clock += 10_000;
    await m.deliverPending();
    assert.equal(Number((await row(db, id)).attempts), 1);

    smtp.reject.delete(to);
    clock += 60_000;
    await m.deliverPending();
    r = await row(db, id);
    assert.ok(Number(r.sent_at) > 0);
    assert.equal(Number(r.attempts), 2);
    assert.equal(r.last_error, null);
    assert.equal(smtp.to(to).length, 1);
  });

  it('gives up after the last attempt and keeps the mail as failed', async () => {
    const tenantId = await tenant();
    const to = address('hopeless');
    let clock = Date.now();
    const id = await db.tx((trx) => enqueueMail(trx, tenantId, invitation(to), clock));
    smtp.reject.add(to);
    const m = mailer({ SMTP_URL: smtp.url }, { now: () => clock });
    for (let i = 0; i < MAX_ATTEMPTS + 2; i++) {
      await m.deliverPending();
      clock += 3 * 3_600_000;
    }
    const mail = await getOutboxMail(db.knex, id);
    assert.equal(mail?.attempts, MAX_ATTEMPTS);
    assert.equal(mail?.state, 'failed');
    assert.equal(mail?.sentAt, null);
    smtp.reject.delete(to);
  });

  it('an unreachable server costs one attempt per pass, not one per mail', async () => {
    const tenantId = await tenant();
    const closed = await smtpServer();
    await closed.close();
    const ids = await db.tx(async (trx) => [
      await enqueueMail(trx, tenantId, invitation(address('down-a'))),
      await enqueueMail(trx, tenantId, invitation(address('down-b'))),
    ]);
    const log = capture();
    const m = mailer({ SMTP_URL: closed.url }, { logger: log.logger });
    assert.equal(await m.deliverPending(), 0);
    const attempts = await Promise.all(ids.map(async (id) => Number((await row(db, id)).attempts)));
    assert.ok(attempts[0]! + attempts[1]! <= 1, `attempts ${attempts.join(',')}`);
    assert.ok(!log.raw.join('').includes(PASS), 'the SMTP password reached the log');
    // Delivered once the server is back (a fresh mailer whose clock is past the backoff).
    await mailer({ SMTP_URL: smtp.url }, { now: () => Date.now() + 120_000 }).deliverPending();
    for (const id of ids) assert.ok(Number((await row(db, id)).sent_at) > 0);
  });

  it('sends each mail once when several passes and processes run at the same time', async () => {
    const tenantId = await tenant();
    const tos = Array.from({ length: 6 }, (_, i) => address(`race${i}`));
    const ids = await db.tx(async (trx) => {
      const out: string[] = [];
      for (const to of tos) out.push(await enqueueMail(trx, tenantId, invitation(to)));
      return out;
    });
    const a = mailer({ SMTP_URL: smtp.url });
    const b = mailer({ SMTP_URL: smtp.url });
    const counts = await Promise.all([a.deliverPending(), b.deliverPending(), a.deliverPending(), b.deliverPending()]);
    assert.ok(counts.reduce((x, y) => x + y, 0) >= tos.length);
    for (const to of tos) assert.equal(smtp.to(to).length, 1, `${to} received ${smtp.to(to).length} times`);
    for (const id of ids) {
      const r = await row(db, id);
      assert.ok(Number(r.sent_at) > 0);
      assert.equal(Number(r.attempts), 1);
    }
  });

  it('kick() delivers in the background and coalesces; close() leaves no mail half-sent', async () => {
    const tenantId = await tenant();
    const to = address('kick');
    const id = await db.tx((trx) => enqueueMail(trx, tenantId, invitation(to)));
    const m = createMailer({
      config: testConfig({ SMTP_URL: smtp.url }),
      db,
      logger: createLogger('silent'),
      retryIntervalMs: 0,
    });
    m.kick();
    m.kick();
    m.kick();
    for (let i = 0; i < 100 && (await row(db, id)).sent_at === null; i++) await new Promise((r) => setTimeout(r, 20));
    await m.close();
    assert.equal(smtp.to(to).length, 1);
    assert.ok(Number((await row(db, id)).sent_at) > 0);
    m.kick(); // after close: a no-op, not an error
    await assert.rejects(m.deliverPending(), /closed/);

    // Closing during a pass: the pass stops between mails and close() waits for the one being
    // sent, so a mail is either sent and marked, or untouched for the next start.
    const to2 = address('kick-close');
    const id2 = await db.tx((trx) => enqueueMail(trx, tenantId, invitation(to2)));
    const m2 = createMailer({
      config: testConfig({ SMTP_URL: smtp.url }),
      db,
      logger: createLogger('silent'),
      retryIntervalMs: 0,
    });
    m2.kick();
    await m2.close();
    const r = await row(db, id2);
    if (r.sent_at === null) {
      assert.equal(Number(r.attempts), 0);
      assert.equal(smtp.to(to2).length, 0);
    } else {
      assert.equal(smtp.to(to2).length, 1);
    }
  });

  it('without SMTP_URL warns once, logs each mail with its link and marks it sent', async () => {
    const tenantId = await tenant();
    const to = address('logged');
    const link = 'https://roster.test/invite/xyz789';
    const id = await db.tx((trx) => enqueueMail(trx, tenantId, invitation(to, link)));
    const log = capture();
    const m = mailer({}, { logger: log.logger });
    const warnings = log.lines.filter((l) => l.level === 40);
    assert.equal(warnings.length, 1);
    assert.match(String(warnings[0]!.msg), /SMTP_URL is not set/);

    await m.deliverPending();
    const line = log.lines.find((l) => l.to === to);
    assert.ok(line, 'the mail was not logged');
    assert.equal(line.level, 30);
    assert.equal(line.subject, 'You are invited to Acme');
    assert.ok(String(line.text).includes(link));
    assert.equal(line.from, 'Roster <no-reply@localhost>');
    const mail = await getOutboxMail(db.knex, id);
    assert.equal(mail?.state, 'sent');
    assert.equal(mail?.text, invitation(to, link).text);
    assert.equal(smtp.to(to).length, 0);
  });
});
