import assert from 'node:assert/strict';
import request from 'supertest';
import { buildTenant } from '../../support/factories.js';
import { useApp, useTenant } from '../../support/harness.js';
import { auditEvents, buildUser } from '../../support/management.js';
import { makeKey, TestSamlIdp } from '../../support/saml.js';

const SECRET = 'very-secret-client-secret';

describe('management API: SSO connections and tenant settings', () => {
  const app = useApp();
  const t = useTenant();
  const idp = new TestSamlIdp('https://idp.example.com/entity', 'https://idp.example.com/sso');

  const oidc = (extra: Record<string, unknown> = {}) => ({
    protocol: 'oidc',
    name: 'Okta',
    issuer: 'https://acme.okta.com',
    clientId: '0oa123',
    clientSecret: SECRET,
    ...extra,
  });
  const create = (body: Record<string, unknown>) =>
    request(app).post('/api/v1/sso-connections').set(t.admin).send(body);
  const fields = (res: request.Response) => (res.body.fields as { path: string }[]).map((f) => f.path);

  it('creates an OIDC connection, answers what to register at the IdP, and never shows the client secret', async () => {
    const res = await create(oidc({ groupsClaim: 'groups' })).expect(201);
    const base = `https://roster.test/auth/${t.tenant.slug}`;
    assert.equal(res.body.loginUrl, `${base}/${res.body.id}/login`);
    assert.equal(res.body.redirectUri, `${base}/oidc/${res.body.id}/callback`);
    assert.equal(res.body.clientSecretSet, true);
    assert.deepEqual(res.body.scopes, ['openid', 'email', 'profile']);
    assert.equal(res.body.tokenEndpointAuthMethod, 'client_secret_basic');
    assert.deepEqual(res.body.idTokenSigningAlgs, ['RS256']);
    assert.equal(res.body.matchBy, 'email');
    assert.deepEqual(res.body.domains, []);
    assert.equal(res.body.trustEmailWithoutVerifiedClaim, false);
    assert.equal(res.body.enabled, true);
    await request(app)
      .patch(`/api/v1/sso-connections/${res.body.id}`)
      .set(t.admin)
      .send({ clientSecret: `${SECRET}-2`, scopes: ['openid', 'email'] })
      .expect(200);
    const one = await request(app).get(`/api/v1/sso-connections/${res.body.id}`).set(t.admin).expect(200);
    const list = await request(app).get('/api/v1/sso-connections').set(t.admin).expect(200);
    const audit = await request(app).get('/api/v1/audit-events').set(t.admin).expect(200);
    for (const body of [res.body, one.body, list.body, audit.body])
      assert.ok(!JSON.stringify(body).includes(SECRET), 'the secret leaked');
    assert.deepEqual(one.body.scopes, ['openid', 'email']);
    const updated = await auditEvents(app, t, 'sso_connection.updated');
    assert.equal((updated[0]!.after as { clientSecretChanged: boolean }).clientSecretChanged, true);
  });

  it('creates a SAML connection from IdP metadata, with the SP values to give the IdP', async () => {
    const res = await create({
      protocol: 'saml',
      name: 'Entra',
      idpMetadataXml: idp.metadata(),
      attributes: { groups: 'http://schemas.microsoft.com/ws/2008/06/identity/claims/groups' },
    }).expect(201);
    const root = `https://roster.test/auth/${t.tenant.slug}/saml/${res.body.id}`;
    assert.equal(res.body.entityId, `${root}/metadata`);
    assert.equal(res.body.acsUrl, `${root}/acs`);
    assert.equal(res.body.metadataUrl, `${root}/metadata`);
    assert.equal(res.body.idpEntityId, idp.entityId);
    assert.equal(res.body.idpSsoUrl, idp.ssoUrl, 'the HTTP-Redirect endpoint, not the POST one');
    assert.equal(res.body.idpCertificates.length, 1);
    assert.match(res.body.idpCertificateDetails[0].fingerprintSha256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    assert.equal(res.body.allowIdpInitiated, false);
    assert.deepEqual(res.body.attributes, {
      email: null,
      name: null,
      groups: 'http://schemas.microsoft.com/ws/2008/06/identity/claims/groups',
    });
    const created = await auditEvents(app, t, 'sso_connection.created');
    assert.equal(created[0]!.entity.id, res.body.id);
  });

  it('creates a SAML connection from explicit values, certificates as PEM or bare base64', async () => {
    const bare = idp.key.certificate.replace(/-----[A-Z ]+-----|\s/g, '');
    const res = await create({
      protocol: 'saml',
      name: 'Manual',
      idpEntityId: 'urn:idp',
      idpSsoUrl: 'https://idp.example.com/sso',
      idpCertificates: [bare, makeKey().certificate],
      nameIdFormat: 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress',
    }).expect(201);
    assert.equal(res.body.idpCertificates.length, 2);
    assert.match(res.body.idpCertificates[0], /^-----BEGIN CERTIFICATE-----\n/);
    assert.equal(res.body.nameIdFormat, 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress');
  });

  it('refuses bad settings, naming each field', async () => {
    assert.deepEqual(fields(await create(oidc({ issuer: 'http://acme.okta.com' })).expect(400)), ['body.issuer']);
    await create(oidc({ issuer: 'http://127.0.0.1:8443' })).expect(201);
    await create(oidc({ name: 'Local', issuer: 'http://localhost:9000/realms/x', enabled: false })).expect(201);
    assert.deepEqual(fields(await create({ protocol: 'oidc', name: 'x' }).expect(400)).sort(), [
      'body.clientId',
      'body.clientSecret',
      'body.issuer',
    ]);
    assert.deepEqual(fields(await create(oidc({ name: 'x', scopes: ['email'] })).expect(400)), ['body.scopes']);
    assert.equal(
      (await create(oidc({ name: 'x', idTokenSigningAlgs: ['none'] })).expect(400)).body.code,
      'invalid_body',
    );
    assert.equal(
      (await create(oidc({ name: 'x', idTokenSigningAlgs: ['HS256'] })).expect(400)).body.code,
      'invalid_body',
    );
    assert.deepEqual(fields(await create(oidc({ name: 'x', allowIdpInitiated: true })).expect(400)), [
      'body.allowIdpInitiated',
    ]);
    assert.deepEqual(
      fields(
        await create({
          protocol: 'saml',
          name: 'x',
          idpMetadataXml: idp.metadata(),
          trustEmailWithoutVerifiedClaim: true,
        }).expect(400),
      ),
      ['body.trustEmailWithoutVerifiedClaim'],
    );
    assert.deepEqual(fields(await create({ protocol: 'saml', name: 'x' }).expect(400)), ['body.idpEntityId']);
    assert.deepEqual(fields(await create({ protocol: 'saml', name: 'x', idpMetadataXml: '<nope' }).expect(400)), [
      'body.idpMetadataXml',
    ]);
    const postOnly = idp
      .metadata()
      .replace(/<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"[^>]*\/>/, '');
    assert.match(
      (await create({ protocol: 'saml', name: 'x', idpMetadataXml: postOnly }).expect(400)).body.detail,
      /HTTP-Redirect/,
    );
    assert.deepEqual(
      fields(
        await create({
          protocol: 'saml',
          name: 'x',
          idpEntityId: 'urn:x',
          idpSsoUrl: 'https://x.test',
          idpCertificates: ['not a certificate'],
        }).expect(400),
      ),
      ['body.idpCertificates.0'],
    );
    assert.deepEqual(
      fields(
        await create({
          protocol: 'saml',
          name: 'x',
          idpEntityId: 'urn:x',
          idpSsoUrl: 'http://x.test',
          idpCertificates: [idp.key.certificate],
        }).expect(400),
      ),
      ['body.idpSsoUrl'],
    );
    assert.deepEqual(
      fields(
        await create({ protocol: 'saml', name: 'x', idpMetadataXml: idp.metadata(), issuer: 'https://x.test' }).expect(
          400,
        ),
      ),
      ['body.issuer'],
    );
    assert.equal((await create(oidc()).expect(409)).body.code, 'connection_name_taken');
  });

  it('changes, disables and deletes a connection; the protocol cannot change', async () => {
    const c = (await create(oidc()).expect(201)).body;
    assert.deepEqual(
      fields(
        await request(app).patch(`/api/v1/sso-connections/${c.id}`).set(t.admin).send({ protocol: 'saml' }).expect(400),
      ),
      ['body.protocol'],
    );
    const off = await request(app)
      .patch(`/api/v1/sso-connections/${c.id}`)
      .set(t.admin)
      .send({ enabled: false, name: 'Okta (old)', matchBy: 'userName' })
      .expect(200);
    assert.equal(off.body.enabled, false);
    assert.equal(off.body.name, 'Okta (old)');
    assert.equal(off.body.matchBy, 'userName');
    assert.equal(off.body.issuer, 'https://acme.okta.com');
    await request(app).delete(`/api/v1/sso-connections/${c.id}`).set(t.admin).expect(204);
    await request(app).get(`/api/v1/sso-connections/${c.id}`).set(t.admin).expect(404);
    await request(app).delete(`/api/v1/sso-connections/${c.id}`).set(t.admin).expect(404);
    const deleted = await auditEvents(app, t, 'sso_connection.deleted');
    assert.equal(deleted[0]!.after, null);
  });

  it('is for admins of the tenant only', async () => {
    const c = (await create(oidc()).expect(201)).body;
    const member = await buildUser(app, t, { areas: { account: 'manage' } });
    assert.equal(
      (await request(app).get('/api/v1/sso-connections').set(member.auth).expect(403)).body.code,
      'admin_required',
    );
    await request(app)
      .post('/api/v1/sso-connections')
      .set(member.auth)
      .send(oidc({ name: 'mine' }))
      .expect(403);
    const other = await buildTenant();
    await request(app).get(`/api/v1/sso-connections/${c.id}`).set(other.admin).expect(404);
    await request(app).patch(`/api/v1/sso-connections/${c.id}`).set(other.admin).send({ enabled: false }).expect(404);
    await request(app).delete(`/api/v1/sso-connections/${c.id}`).set(other.admin).expect(404);
    assert.deepEqual((await request(app).get('/api/v1/sso-connections').set(other.admin).expect(200)).body.items, []);
  });

  it('PATCH /tenant sets JIT provisioning and the time zone, audited, admins only', async () => {
    const res = await request(app)
      .patch('/api/v1/tenant')
      .set(t.admin)
      .send({ jitProvisioning: true, timeZone: 'Europe/Paris' })
      .expect(200);
    assert.equal(res.body.jitProvisioning, true);
    assert.equal(res.body.timeZone, 'Europe/Paris');
    const got = await request(app).get('/api/v1/tenant').set(t.admin).expect(200);
    assert.equal(got.body.timeZone, 'Europe/Paris');
    const events = await auditEvents(app, t, 'tenant.updated');
    assert.deepEqual(events[0]!.before, { jitProvisioning: false, timeZone: 'UTC' });
    assert.deepEqual(events[0]!.after, { jitProvisioning: true, timeZone: 'Europe/Paris' });

    assert.equal(
      (await request(app).patch('/api/v1/tenant').set(t.admin).send({ timeZone: 'Mars/Olympus' }).expect(400)).body
        .code,
      'invalid_time_zone',
    );
    await request(app).patch('/api/v1/tenant').set(t.admin).send({ userLimit: 1.5 }).expect(400);
    await request(app).patch('/api/v1/tenant').set(t.admin).send({}).expect(400);
    await request(app).patch('/api/v1/tenant').set(t.admin).send({ slug: 'other' }).expect(400);
    const member = await buildUser(app, t, { areas: { account: 'manage' } });
    assert.equal(
      (await request(app).patch('/api/v1/tenant').set(member.auth).send({ jitProvisioning: false }).expect(403)).body
        .code,
      'admin_required',
    );
  });

  it('describes the new operations in the OpenAPI document', async () => {
    const doc = await request(app).get('/api/v1/openapi.json').expect(200);
    assert.ok(doc.body.paths['/sso-connections'].post);
    assert.ok(doc.body.paths['/sso-connections/{id}'].patch);
    assert.ok(doc.body.paths['/me'].get);
    assert.ok(doc.body.paths['/tenant'].patch);
  });
});
