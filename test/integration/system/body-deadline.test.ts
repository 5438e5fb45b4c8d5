import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { brotliCompressSync, gzipSync } from 'node:zlib';
import { createApp } from '../../../src/app.js';
import { RequestTimeout } from '../../../src/errors.js';
import { bodyDeadline, serverTimeouts } from '../../../src/http/body.js';
import { testDeps } from '../../support/app.js';
import { buildTenant, type TestTenant } from '../../support/factories.js';

interface Raw {
  status: number;
  headers: string;
  body: string;
  ms: number;
}

/**
 * A client that sends the headers at once, then the body one byte every 100 ms, never finishing
 * in time; resolves with the answer it gets, or rejects after `giveUpMs`.
 */
function trickle(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  giveUpMs = 8000,
): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = net.connect(port, '127.0.0.1');
    let received = '';
    let tick: NodeJS.Timeout | undefined;
    const giveUp = setTimeout(() => finish(new Error(`no answer within ${giveUpMs} ms`)), giveUpMs);
    const finish = (err?: Error) => {
      clearInterval(tick);
      clearTimeout(giveUp);
      socket.destroy();
      if (err) return reject(err);
      const [head, ...rest] = received.split('\r\n\r\n');
      resolve({
        status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head ?? '')?.[1]),
        headers: head ?? '',
        body: rest.join('\r\n\r\n'),
        ms: Date.now() - started,
      });
    };
    socket.on('connect', () => {
      const lines = [
        `${method} ${path} HTTP/1.1`,
        'Host: roster.test',
        'Content-Length: 1000',
        ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
      ];
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
      let sent = 0;
      tick = setInterval(() => {
        if (sent++ < 900 && !socket.destroyed) socket.write(sent === 1 ? '{' : ' ');
      }, 100);
    });
    socket.on('data', (d) => {
      received += d.toString('latin1');
      // A complete answer: headers and as many body bytes as it declares.
      const m = /\r\ncontent-length: (\d+)/i.exec(received);
      const at = received.indexOf('\r\n\r\n');
      if (m && at >= 0 && received.length - at - 4 >= Number(m[1])) finish();
    });
    socket.on('close', () => (received ? finish() : finish(new Error('closed without an answer'))));
    socket.on('error', () => undefined);
  });
}

describe('request body deadline', function () {
  this.timeout(30000);
  let server: http.Server;
  let port: number;
  let a: TestTenant;
  let b: TestTenant;
  before(async () => {
    const deps = await testDeps({ REQUEST_BODY_TIMEOUT_MS: '1000' });
    server = http.createServer(serverTimeouts(deps.config.requestBodyTimeoutMs), createApp(deps));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
    [a, b] = [await buildTenant(), await buildTenant()];
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  /** Tenant B's read, timed, while tenant A trickles. */
  const readAsB = async () => {
    const started = Date.now();
    const res = await fetch(`http://127.0.0.1:${port}/scim/v2/Users?count=1`, { headers: b.scim });
    await res.text();
    return { status: res.status, ms: Date.now() - started };
  };

  it('answers a SCIM write trickled one byte at a time with 408 after the deadline, while another tenant is served', async () => {
    const slow = trickle(port, 'POST', '/scim/v2/Users', { ...a.scim, 'Content-Type': 'application/scim+json' });
    await new Promise((r) => setTimeout(r, 300));
    const other = await readAsB();
    assert.equal(other.status, 200);
    assert.ok(other.ms < 1000, `tenant B waited ${other.ms} ms`);
    const res = await slow;
    assert.equal(res.status, 408, res.headers);
    assert.ok(res.ms >= 900 && res.ms < 5000, `answered after ${res.ms} ms`);
    assert.match(res.headers, /\r\nconnection: close/i);
    const body = JSON.parse(res.body);
    assert.deepEqual([body.schemas, body.status], [['urn:ietf:params:scim:api:messages:2.0:Error'], '408']);
  });

  it('does the same for a management write, with a problem body', async () => {
    const slow = trickle(port, 'POST', '/api/v1/groups', { ...a.admin, 'Content-Type': 'application/json' });
    await new Promise((r) => setTimeout(r, 300));
    const other = await readAsB();
    assert.equal(other.status, 200);
    assert.ok(other.ms < 1000, `tenant B waited ${other.ms} ms`);
    const res = await slow;
    assert.equal(res.status, 408, res.headers);
    assert.equal(JSON.parse(res.body).code, 'body_timeout');
  });

  it('does the same for an anonymous public operation and a SAML form post', async () => {
    const accept = await trickle(port, 'POST', '/api/v1/invitations/accept', { 'Content-Type': 'application/json' });
    assert.equal(accept.status, 408, accept.headers);
    const acs = await trickle(port, 'POST', `/auth/${a.tenant.slug}/saml/no-such-connection/acs`, {
      'Content-Type': 'application/x-www-form-urlencoded',
    });
    assert.equal(acs.status, 408, acs.headers);
    assert.equal(JSON.parse(acs.body).code, 'body_timeout');
  });

  it('still accepts compressed and charset-labelled JSON, and refuses what it cannot decode', async () => {
    const post = async (headers: Record<string, string>, body: string | Uint8Array<ArrayBuffer>) => {
      const res = await fetch(`http://127.0.0.1:${port}/api/v1/groups`, {
        method: 'POST',
        headers: { ...a.admin, 'Content-Type': 'application/json', ...headers },
        body,
      });
      return { status: res.status, body: (await res.json()) as { code?: string } };
    };
    assert.equal(
      (await post({ 'Content-Encoding': 'gzip' }, new Uint8Array(gzipSync(JSON.stringify({ name: 'Gzipped' })))))
        .status,
      201,
    );
    assert.equal(
      (
        await post(
          { 'Content-Encoding': 'br', 'Content-Type': 'application/json; charset=UTF-8' },
          new Uint8Array(brotliCompressSync(JSON.stringify({ name: 'Brotli' }))),
        )
      ).status,
      201,
    );
    assert.equal((await post({ 'Content-Encoding': 'compress' }, 'x')).status, 415);
    assert.equal((await post({ 'Content-Type': 'application/json; charset=latin1' }, '{}')).status, 415);
    assert.equal((await post({ 'Content-Encoding': 'gzip' }, 'not gzip')).status, 400);
    assert.equal((await post({}, '"just a string"')).body.code, 'malformed_json');
  });

  it('reads nothing before authentication: an unauthenticated management write is refused at once', async () => {
    const res = await trickle(port, 'POST', '/api/v1/groups', { 'Content-Type': 'application/json' });
    assert.equal(res.status, 401);
    assert.ok(res.ms < 900, `answered after ${res.ms} ms`);
  });
});

describe('bodyDeadline, the stream helper for uploads', () => {
  it('fails the stream with RequestTimeout and leaves the response free to answer', async () => {
    const server = http.createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      try {
        for await (const c of bodyDeadline(req, 300)) chunks.push(c as Buffer);
        res.writeHead(200).end(String(Buffer.concat(chunks).length));
      } catch (err) {
        res
          .writeHead(err instanceof RequestTimeout ? 408 : 500, { 'Content-Type': 'text/plain', 'Content-Length': '7' })
          .end('timeout');
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      const res = await trickle(port, 'POST', '/upload', { 'Content-Type': 'text/csv' }, 3000);
      assert.equal(res.status, 408);
      assert.ok(res.ms < 2000, `answered after ${res.ms} ms`);
      const quick = await fetch(`http://127.0.0.1:${port}/upload`, { method: 'POST', body: 'a,b\n1,2\n' });
      assert.equal(await quick.text(), '8');
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it("gives Node's own limits room for the application's 408", () => {
    const t = serverTimeouts(30000);
    assert.ok(t.headersTimeout! <= t.requestTimeout!);
    assert.ok(t.requestTimeout! > t.headersTimeout! + 30000);
    assert.ok(t.connectionsCheckingInterval! <= 1000);
  });
});
