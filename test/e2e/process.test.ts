import assert from 'node:assert/strict';
import net from 'node:net';
import { freshDatabaseUrl } from '../support/db.js';
import { listeningPort, startRoster } from '../support/process.js';

async function get(port: number, path: string, token?: string) {
  return fetch(`http://127.0.0.1:${port}${path}`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
}

describe('the Roster process', () => {
  it('prints the default tenant credentials on first start only, and they work', async () => {
    const url = await freshDatabaseUrl('first-start');
    const first = startRoster({ DATABASE_URL: url, PUBLIC_BASE_URL: 'http://roster.local:9999' });
    const port = await listeningPort(first);
    const out = first.stdout();
    assert.match(out, /SCIM base URL\s+http:\/\/roster\.local:9999\/scim\/v2/);
    const scim = /SCIM token\s+(roster_scim_\S+)/.exec(out)![1]!;
    const admin = /Admin API key\s+(roster_admin_\S+)/.exec(out)![1]!;
    assert.equal((await get(port, '/scim/v2/ServiceProviderConfig', scim)).status, 200);
    const tenant = (await (await get(port, '/api/v1/tenant', admin)).json()) as { slug: string };
    assert.equal(tenant.slug, 'default');
    // The secrets are printed in the banner, never inside a JSON log line.
    for (const line of out.split('\n').filter((l) => l.startsWith('{')))
      assert.ok(!line.includes(scim) && !line.includes(admin));
    first.child.kill('SIGTERM');
    assert.equal(await first.exited, 0);

    const second = startRoster({ DATABASE_URL: url });
    await listeningPort(second);
    assert.doesNotMatch(second.stdout(), /SCIM token|roster_scim_|roster_admin_/);
    second.child.kill('SIGTERM');
    assert.equal(await second.exited, 0);
  });

  it('finishes an in-flight request on SIGTERM, refuses new connections, and exits 0', async () => {
    const url = await freshDatabaseUrl('shutdown');
    const r = startRoster({ DATABASE_URL: url, SHUTDOWN_TIMEOUT_MS: '5000' });
    const port = await listeningPort(r);
    const token = /SCIM token\s+(roster_scim_\S+)/.exec(r.stdout())![1]!;

    // A request whose body is still arriving when the signal comes.
    const body = JSON.stringify({ schemas: [] });
    const sock = net.connect(port, '127.0.0.1');
    await new Promise((res) => sock.once('connect', res));
    let response = '';
    sock.on('data', (d) => (response += d));
    sock.write(
      `POST /scim/v2/ServiceProviderConfig HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n` +
        `Content-Type: application/scim+json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 3)}`,
    );
    await new Promise((res) => setTimeout(res, 300));
    r.child.kill('SIGTERM');
    await new Promise((res) => setTimeout(res, 300));
    await assert.rejects(fetch(`http://127.0.0.1:${port}/healthz`), 'a new connection was accepted during shutdown');
    sock.write(body.slice(3));
    assert.equal(await r.exited, 0);
    assert.match(response, /^HTTP\/1\.1 405/, `in-flight request got: ${response.slice(0, 80)}`);
    assert.match(r.stdout(), /"stopped"/);
  });
});

describe('the Roster process with a bad area catalogue', () => {
  it('refuses to start, naming the problem, with exit code 2', async () => {
    const fs = await import('node:fs');
    const os = await import('node:os');
    const file = `${os.tmpdir()}/roster-bad-catalogue-${process.pid}.json`;
    fs.writeFileSync(file, JSON.stringify([{ label: 'Sales' }, { label: 'SALES' }]));
    const r = startRoster({ DATABASE_URL: await freshDatabaseUrl('bad-catalogue'), AREA_CATALOGUE_FILE: file });
    assert.equal(await r.exited, 2);
    assert.match(r.stderr(), /two areas have the key "sales"/);
    fs.rmSync(file);
  });
});

describe('the Roster process with an unreadable SAML SP key', () => {
  it('refuses to start, naming the file, with exit code 2', async () => {
    const r = startRoster({
      DATABASE_URL: await freshDatabaseUrl('bad-sp-key'),
      SAML_SP_KEY_FILE: '/nonexistent/sp.key',
      SAML_SP_CERT_FILE: '/nonexistent/sp.crt',
    });
    assert.equal(await r.exited, 2);
    assert.match(r.stderr(), /SAML_SP_KEY_FILE: cannot read \/nonexistent\/sp\.key/);
  });
});
