import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerAddress } from 'smtp-server';

export interface Received {
  from: string;
  rcpt: string[];
  headers: Map<string, string>;
  body: string;
}

export const SMTP_USER = 'roster';
export const SMTP_PASS = 'p@ss/w0rd-s3cret';

/** Just enough RFC 5322: unfolded headers by lower-case name, and a single-part text body. */
export function parseMessage(raw: string): { headers: Map<string, string>; body: string } {
  const split = raw.indexOf('\r\n\r\n');
  const headers = new Map<string, string>();
  for (const line of raw
    .slice(0, split)
    .replace(/\r\n[ \t]+/g, ' ')
    .split('\r\n')) {
    const colon = line.indexOf(':');
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  let body = raw.slice(split + 4);
  if (/quoted-printable/i.test(headers.get('content-transfer-encoding') ?? '')) {
    body = body
      .replace(/=\r\n/g, '')
      .replace(/=([0-9A-F]{2})/gi, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
  }
  return { headers, body: body.replace(/\r\n/g, '\n') };
}

/** A real SMTP server in the process; `reject` holds recipients refused at RCPT TO. */
export async function smtpServer() {
  const received: Received[] = [];
  const reject = new Set<string>();
  const waiters: (() => void)[] = [];
  const server = new SMTPServer({
    authOptional: true,
    allowInsecureAuth: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onAuth(auth, _session, cb) {
      if (auth.username === SMTP_USER && auth.password === SMTP_PASS) cb(null, { user: SMTP_USER });
      else cb(new Error('Invalid username or password'));
    },
    onRcptTo(address: SMTPServerAddress, _session, cb) {
      if (reject.has(address.address)) {
        const err = new Error(`mailbox ${address.address} unavailable`) as Error & { responseCode: number };
        err.responseCode = 550;
        cb(err);
      } else cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        received.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          rcpt: session.envelope.rcptTo.map((r) => r.address),
          ...parseMessage(Buffer.concat(chunks).toString('utf8')),
        });
        cb();
        waiters.splice(0).forEach((w) => w());
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as AddressInfo).port;
  // Mailbox names compare case-insensitively here, as every real mail system in use treats them.
  const to = (address: string) => received.filter((m) => m.rcpt.some((r) => r.toLowerCase() === address.toLowerCase()));
  return {
    url: `smtp://${SMTP_USER}:${encodeURIComponent(SMTP_PASS)}@127.0.0.1:${port}`,
    received,
    reject,
    to,
    /** Resolves with the `n`th mail to an address once it has arrived. */
    async waitFor(address: string, n = 1, timeoutMs = 5000): Promise<Received> {
      const deadline = Date.now() + timeoutMs;
      while (to(address).length < n) {
        if (Date.now() > deadline) throw new Error(`no mail #${n} to ${address} within ${timeoutMs} ms`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 50);
        });
      }
      return to(address)[n - 1]!;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
