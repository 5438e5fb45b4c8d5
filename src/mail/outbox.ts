import type { Knex } from 'knex';
import { newId } from '../db/ids.js';
import { toMs } from '../db/rows.js';

/**
 * The transactional outbox (table `mail_outbox`, migration 003). A mail is written with the
 * change that causes it, in the caller's transaction, and delivered after commit by the mailer
 * (mail/mailer.ts): a rolled-back change sends nothing, a committed one is never lost.
 */

/** Delivery stops after this many failed attempts; the row stays, readable with `roster outbox`. */
export const MAX_ATTEMPTS = 10;
const LAST_ERROR_MAX = 500;

export interface OutgoingMail {
  /** What the mail is for, e.g. `invitation`; at most 32 characters. */
  kind: string;
  to: string;
  subject: string;
  text: string;
  html?: string;
}

export type MailState = 'sent' | 'pending' | 'failed';

/** A mail as listed: everything but the bodies. */
export interface OutboxEntry {
  id: string;
  tenantId: string;
  kind: string;
  to: string;
  subject: string;
  createdAt: number;
  sentAt: number | null;
  attempts: number;
  /** When the last delivery attempt started or failed (null before the first). */
  lastAttemptAt: number | null;
  lastError: string | null;
  /** `failed`: gave up after MAX_ATTEMPTS attempts. */
  state: MailState;
}

export interface OutboxMail extends OutboxEntry {
  text: string;
  html: string | null;
}

/** The knex instance or a transaction; enqueueMail is meant to run inside the caller's one. */
type Runner = Knex | Knex.Transaction;

const SUMMARY_COLUMNS = [
  'tenant_id',
  'id',
  'kind',
  'to_address',
  'subject',
  'created_at',
  'sent_at',
  'attempts',
  'last_attempt_at',
  'last_error',
];

/**
 * Writes a mail to the outbox in `trx` and answers its id. Nothing is sent here: the mailer
 * delivers it once the transaction has committed (call `mailer.kick()` after commit).
 */
export async function enqueueMail(
  trx: Runner,
  tenantId: string,
  mail: OutgoingMail,
  now = Date.now(),
): Promise<string> {
  if (!mail.kind || mail.kind.length > 32) throw new Error('mail kind must be 1-32 characters');
  if (!mail.to || mail.to.length > 320 || /[\r\n]/.test(mail.to))
    throw new Error('mail recipient must be one address of at most 320 characters');
  if (mail.subject.length > 255 || /[\r\n]/.test(mail.subject))
    throw new Error('mail subject must be one line of at most 255 characters');
  const id = newId();
  await trx('mail_outbox').insert({
    tenant_id: tenantId,
    id,
    kind: mail.kind,
    to_address: mail.to,
    subject: mail.subject,
    text_body: mail.text,
    html_body: mail.html ?? null,
    created_at: now,
    sent_at: null,
    attempts: 0,
    last_error: null,
  });
  return id;
}

/** The most recent mails first, of one tenant or of all. */
export async function listOutbox(knex: Knex, opts: { tenantId?: string; limit: number }): Promise<OutboxEntry[]> {
  const q = knex('mail_outbox')
    .select(SUMMARY_COLUMNS)
    .orderBy([
      { column: 'created_at', order: 'desc' },
      { column: 'id', order: 'desc' },
    ])
    .limit(opts.limit);
  if (opts.tenantId !== undefined) q.where({ tenant_id: opts.tenantId });
  return (await q).map(entryFromRow);
}

/** One mail with its bodies; undefined when there is none with that id (in that tenant, if given). */
export async function getOutboxMail(knex: Knex, id: string, tenantId?: string): Promise<OutboxMail | undefined> {
  const q = knex('mail_outbox').where({ id });
  if (tenantId !== undefined) q.where({ tenant_id: tenantId });
  const row = await q.first();
  if (!row) return undefined;
  return {
    ...entryFromRow(row),
    text: String(row.text_body),
    html: row.html_body === null ? null : String(row.html_body),
  };
}

// ---- used by the mailer -------------------------------------------------------------------

function truncated(message: string): string {
  const text = message.replace(/\s+/g, ' ').trim();
  return text.length > LAST_ERROR_MAX ? `${text.slice(0, LAST_ERROR_MAX - 1)}…` : text;
}

export interface PendingMail {
  tenantId: string;
  id: string;
  kind: string;
  to: string;
  subject: string;
  text: string;
  html: string | null;
  createdAt: number;
  attempts: number;
  lastAttemptAt: number | null;
  lastError: string | null;
}

/**
 * Unsent mails that have attempts left, oldest first, a page after `after` (keyset on
 * created_at, id). Whether a failed one is due again is the mailer's call.
 */
export async function pendingPage(
  knex: Knex,
  limit: number,
  after?: { createdAt: number; id: string },
): Promise<PendingMail[]> {
  const q = knex('mail_outbox')
    .whereNull('sent_at')
    .where('attempts', '<', MAX_ATTEMPTS)
    .orderBy([
      { column: 'created_at', order: 'asc' },
      { column: 'id', order: 'asc' },
    ])
    .limit(limit);
  if (after) {
    q.where((w) =>
      w
        .where('created_at', '>', after.createdAt)
        .orWhere((w2) => w2.where('created_at', '=', after.createdAt).where('id', '>', after.id)),
    );
  }
  return (await q).map((row: Record<string, unknown>) => {
    return {
      tenantId: String(row.tenant_id),
      id: String(row.id),
      kind: String(row.kind),
      to: String(row.to_address),
      subject: String(row.subject),
      text: String(row.text_body),
      html: row.html_body === null || row.html_body === undefined ? null : String(row.html_body),
      createdAt: toMs(row.created_at)!,
      attempts: Number(row.attempts),
      lastAttemptAt: toMs(row.last_attempt_at),
      lastError: (row.last_error as string | null) ?? null,
    };
  });
}

/**
 * Takes a mail for one delivery attempt: only the caller whose update matched (same attempt
 * count, still unsent) may send it. Marks the attempt's start, so another process leaves the
 * mail alone while it is being sent.
 */
export async function claimMail(knex: Knex, mail: PendingMail, now: number): Promise<boolean> {
  const n = await knex('mail_outbox')
    .where({ tenant_id: mail.tenantId, id: mail.id, attempts: mail.attempts })
    .whereNull('sent_at')
    .update({ attempts: mail.attempts + 1, last_attempt_at: now });
  return Number(n) === 1;
}

export async function markSent(knex: Knex, mail: PendingMail, now: number): Promise<void> {
  await knex('mail_outbox')
    .where({ tenant_id: mail.tenantId, id: mail.id })
    .whereNull('sent_at')
    .update({ sent_at: now, last_error: null });
}

export async function markFailed(knex: Knex, mail: PendingMail, message: string): Promise<void> {
  await knex('mail_outbox')
    .where({ tenant_id: mail.tenantId, id: mail.id })
    .whereNull('sent_at')
    .update({ last_error: truncated(message) });
}

function entryFromRow(row: Record<string, unknown>): OutboxEntry {
  const sentAt = toMs(row.sent_at);
  const attempts = Number(row.attempts);
  return {
    id: String(row.id),
    tenantId: String(row.tenant_id),
    kind: String(row.kind),
    to: String(row.to_address),
    subject: String(row.subject),
    createdAt: toMs(row.created_at)!,
    sentAt,
    attempts,
    lastAttemptAt: toMs(row.last_attempt_at),
    lastError: (row.last_error as string | null) ?? null,
    state: sentAt !== null ? 'sent' : attempts >= MAX_ATTEMPTS ? 'failed' : 'pending',
  };
}
