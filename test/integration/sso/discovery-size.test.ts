import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { testApp } from '../../support/app.js';
import { buildTenant } from '../../support/factories.js';
import { pathOf } from '../../support/saml.js';

/**
 * The OIDC discovery cache is bounded by bytes: an IdP serving a huge discovery document (a
 * tenant admin chooses the issuer) is fetched again at each sign-in rather than kept, while an
 * ordinary one is fetched once.
 */
describe('SSO: OIDC discovery documents are cached within a byte bound', () => {
  async function idp(padding: number) {
    let hits = 0;
    const server = http.createServer((req, res) => {
      if (req.url !== '/.well-known/openid-configuration') return void res.writeHead(404).end();
      hits++;
      const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          issuer,
          authorization_endpoint: `${issuer}/authorize`,
          token_endpoint: `${issuer}/token`,
          jwks_uri: `${issuer}/jwks`,
          response_types_supported: ['code'],
          subject_types_supported: ['public'],
          id_token_signing_alg_values_supported: ['RS256'],
          code_challenge_methods_supported: ['S256'],
          ...(padding ? { x_padding: 'x'.repeat(padding) } : {}),
        }),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return {
      issuer: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      hits: () => hits,
      close: () => new Promise((r) => server.close(r)),
    };
  }

  it('keeps an ordinary document and not a 600 KiB one', async () => {
    const app = await testApp();
    const t = await buildTenant();
    for (const [padding, expectedHits] of [
      [0, 1],
      [600 * 1024, 3],
    ] as const) {
      const op = await idp(padding);
      try {
        const conn = (
          await request(app)
            .post('/api/v1/sso-connections')
            .set(t.admin)
            .send({
              protocol: 'oidc',
              name: `size ${padding}`,
              issuer: op.issuer,
              clientId: 'roster',
              clientSecret: 'client-s3cret',
              domains: [`d${padding}.example.com`],
            })
            .expect(201)
        ).body;
        for (let i = 0; i < 3; i++) {
          const login = await request(app).get(pathOf(conn.loginUrl)).expect(302);
          assert.ok(login.headers.location!.startsWith(`${op.issuer}/authorize`), login.headers.location);
        }
        assert.equal(op.hits(), expectedHits, `padding ${padding}`);
      } finally {
        await op.close();
      }
    }
  });
});
