import nodemailer, { type Transport, type Transporter } from 'nodemailer';
import type { Config } from '../config/load.js';
import type { Db } from '../db/knex.js';
import type { Logger } from '../log.js';
import { claimMail, MAX_ATTEMPTS, markFailed, markSent, pendingPage, type PendingMail } from './outbox.js';

/**
 * Delivers the outbox (mail/outbox.ts) after commit. Several processes may share a database:
 * a mail is claimed with a compare-and-set on its attempt count before it is sent, so only the
 * claimer sends it. No network I/O happens inside a database transaction.
 */
export interface Mailer {
  /** One delivery pass over every mail that is due; answers how many this call sent. */
  deliverPending(): Promise<number>;
  /** Schedules a delivery pass and returns at once (call after committing an enqueueMail). */
  kick(): void;
  /** Stops the retry timer, waits for a pass in flight, closes the transport. */
  close(): Promise<void>;
}

export interface MailerDeps {
  config: Pick<Config, 'smtpUrl' | 'mailFrom'>;
  db: Db;
  logger: Logger;
  /** The clock; tests move it to make a failed mail due again. */
  now?: () => number;
  /** How often failed mails are looked at again; 0 runs no timer. Default 30 s. */
  retryIntervalMs?: number;
  /** Wait before the first retry, doubled per further attempt up to 2 h. Default 60 s. */
  retryBaseMs?: number;
}

const PAGE = 100;
const RETRY_CAP_MS = 2 * 3_600_000;
/**
 * Bounds on one SMTP exchange. Kept well under the first retry delay, which is also how long
 * other processes leave a claimed mail alone while it is being sent.
 */
const SMTP_TIMEOUTS = { connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 20_000, dnsTimeout: 10_000 };
/** Failures of the connection rather than of one message: the rest of the pass would fail too. */
const TRANSPORT_DOWN = new Set([
  'ECONNECTION',
  'ETIMEDOUT',
  'ESOCKET',
  'EDNS',
  'ETLS',
  'EAUTH',
  'ENOAUTH',
  'EOAUTH2',
  'EPROXY',
]);

/** The delay before retry number `attempts` (1 = first retry after one failed attempt). */
export function retryDelayMs(attempts: number, baseMs = 60_000): number {
  return Math.min(baseMs * 2 ** Math.max(0, attempts - 1), RETRY_CAP_MS);
}

/** SMTP_URL with its password replaced, fit for a log line. */
export function redactSmtpUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable SMTP_URL)';
  }
}

export function createMailer(deps: MailerDeps): Mailer {
  const { config, db, logger } = deps;
  const now = deps.now ?? Date.now;
  const retryBaseMs = deps.retryBaseMs ?? 60_000;
  const retryIntervalMs = deps.retryIntervalMs ?? 30_000;
  const viaSmtp = config.smtpUrl !== undefined;
  const secrets = smtpSecrets(config.smtpUrl);
  const domain = /@([^>\s]+)>?\s*$/.exec(config.mailFrom)?.[1] ?? 'roster.localhost';

  let transport: Transporter;
  if (config.smtpUrl !== undefined) {
    // Nodemailer's own logger and debug output stay off: its debug log would carry AUTH lines.
    transport = nodemailer.createTransport({ url: config.smtpUrl, ...SMTP_TIMEOUTS, logger: false, debug: false });
    logger.info({ smtp: redactSmtpUrl(config.smtpUrl), from: config.mailFrom }, 'mails are sent through SMTP');
  } else {
    transport = nodemailer.createTransport(logTransport(logger));
    logger.warn(
      'SMTP_URL is not set: mails are logged and kept in the outbox, not sent (read them with `roster outbox list`)',
    );
  }

  let closed = false;
  const passes = new Set<Promise<number>>();
  let kicked: Promise<void> | undefined;
  let kickAgain = false;
  const sending = new Set<string>();

  const isDue = (m: PendingMail, at: number) =>
    m.attempts === 0 || at >= (m.lastAttemptAt ?? m.createdAt) + retryDelayMs(m.attempts, retryBaseMs);

  async function deliver(m: PendingMail): Promise<'sent' | 'failed' | 'down'> {
    try {
      await transport.sendMail({
        from: config.mailFrom,
        to: m.to,
        subject: m.subject,
        text: m.text,
        ...(m.html !== null ? { html: m.html } : {}),
        messageId: `<${m.id}@${domain}>`,
        // Bodies are our own text; nothing in them may make nodemailer read files or URLs.
        disableFileAccess: true,
        disableUrlAccess: true,
      });
    } catch (err) {
      const message = scrub(err instanceof Error ? err.message : String(err), secrets);
      const attempts = m.attempts + 1;
      await markFailed(db.knex, m, message);
      const fields = { mailId: m.id, tenantId: m.tenantId, kind: m.kind, attempts, error: message };
      if (attempts >= MAX_ATTEMPTS)
        logger.error(fields, `mail not delivered after ${MAX_ATTEMPTS} attempts; giving up`);
      else
        logger.warn({ ...fields, retryInMs: retryDelayMs(attempts, retryBaseMs) }, 'mail delivery failed; will retry');
      const e = err as { code?: unknown; responseCode?: unknown };
      return (typeof e.code === 'string' && TRANSPORT_DOWN.has(e.code)) || e.responseCode === 421 ? 'down' : 'failed';
    }
    await markSent(db.knex, m, now());
    if (viaSmtp) logger.info({ mailId: m.id, tenantId: m.tenantId, kind: m.kind, to: m.to }, 'mail sent');
    return 'sent';
  }

  async function pass(): Promise<number> {
    let sent = 0;
    let after: { createdAt: number; id: string } | undefined;
    for (;;) {
      const page = await pendingPage(db.knex, PAGE, after);
      for (const m of page) {
        if (closed) return sent;
        if (sending.has(m.id) || !isDue(m, now())) continue;
        if (!(await claimMail(db.knex, m, now()))) continue;
        sending.add(m.id);
        try {
          const outcome = await deliver(m);
          if (outcome === 'sent') sent++;
          // The server is unreachable or refuses us: leave the rest for the retry timer.
          if (outcome === 'down') return sent;
        } finally {
          sending.delete(m.id);
        }
      }
      if (page.length < PAGE) return sent;
      const last = page[page.length - 1]!;
      after = { createdAt: last.createdAt, id: last.id };
    }
  }

  function track(): Promise<number> {
    const p = pass();
    passes.add(p);
    const done = () => void passes.delete(p);
    p.then(done, done);
    return p;
  }

  function kick(): void {
    if (closed) return;
    if (kicked) {
      kickAgain = true;
      return;
    }
    kicked = (async () => {
      do {
        kickAgain = false;
        try {
          await track();
        } catch (err) {
          logger.error(
            { error: scrub(err instanceof Error ? err.message : String(err), secrets) },
            'mail delivery pass failed',
          );
        }
      } while (kickAgain && !closed);
    })().then(() => {
      kicked = undefined;
    });
  }

  const timer = retryIntervalMs > 0 ? setInterval(kick, retryIntervalMs) : undefined;
  timer?.unref();

  return {
    async deliverPending() {
      if (closed) throw new Error('mailer is closed');
      return track();
    },
    kick,
    async close() {
      if (closed) return;
      closed = true;
      if (timer) clearInterval(timer);
      await Promise.allSettled([...passes, ...(kicked ? [kicked] : [])]);
      transport.close();
    },
  };
}

/**
 * The development transport: no network, the mail goes to the log at info level, with its text,
 * which carries the invitation link a newcomer without SMTP needs. The outbox keeps it too.
 */
function logTransport(logger: Logger): Transport {
  return {
    name: 'roster-log',
    version: '1',
    send(mail, callback) {
      const d = mail.data;
      const messageId = mail.message.messageId();
      logger.info(
        { to: d.to, from: d.from, subject: d.subject, text: d.text, messageId },
        'mail logged, not sent (SMTP_URL is not set)',
      );
      callback(null, { messageId, envelope: mail.message.getEnvelope() });
    },
  };
}

/** The password of SMTP_URL, raw and percent-encoded, to keep out of stored errors and logs. */
function smtpSecrets(url: string | undefined): string[] {
  if (url === undefined) return [];
  try {
    const raw = new URL(url).password;
    if (!raw) return [];
    const decoded = decodeURIComponent(raw);
    return [...new Set([raw, decoded])].filter((s) => s.length >= 3);
  } catch {
    return [];
  }
}

function scrub(message: string, secrets: string[]): string {
  let out = message;
  for (const s of secrets) out = out.split(s).join('***');
  return out;
}
