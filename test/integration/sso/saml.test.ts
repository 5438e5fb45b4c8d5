import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import type { Express } from 'express';
import { setUserLimit } from '../../../src/tenants/store.js';
import { testApp } from '../../support/app.js';
import { testDb } from '../../support/db.js';
import { buildTenant } from '../../support/factories.js';
import { useApp, useTenant } from '../../support/harness.js';
import { auditEvents, buildUser } from '../../support/management.js';
import { GROUP, scimClient } from '../../support/scim.js';
import { check, createAgent, createGroup } from '../../support/workspace.js';
import {
  assertionXml,
  authnRequestOf,
  encryptAssertion,
  makeKey,
  pathOf,
  responseXml,
  samlSignIn,
  signElement,
  TestSamlIdp,
  type SamlConnectionView,
  setCookies,
} from '../../support/saml.js';

type Answer = Parameters<TestSamlIdp['response']>[0];

describe('SSO: SAML sign-in', () => {
  const app = useApp();
  const t = useTenant();
  let conn: SamlConnectionView & { id: string };
  const idp = new TestSamlIdp();

  beforeEach(async () => {
    conn = (
      await request(app)
        .post('/api/v1/sso-connections')
        .set(t.admin)
        .send({ protocol: 'saml', name: 'Okta', idpMetadataXml: idp.metadata(), attributes: { groups: 'groups' } })
        .expect(201)
    ).body;
  });

  /** The IdP's answer to a request id, for `nameId`, with anything overridden. */
  const answer =
    (nameId: string, extra: Partial<Answer> = {}) =>
    (id: string) =>
      idp.response({ audience: conn.entityId, recipient: conn.acsUrl, nameId, inResponseTo: id, ...extra });

  const signIn = (agent: ReturnType<typeof request.agent>, nameId: string, extra: Partial<Answer> = {}) =>
    samlSignIn(agent, conn, answer(nameId, extra));

  async function refused(res: request.Response, status: number, reason: string) {
    assert.equal(res.status, status, res.text);
    assert.match(res.headers['content-type']!, /text\/html/);
    assert.ok(res.text.includes(`Reason: ${reason}.`), res.text);
    assert.equal(
      setCookies(res).some((c) => c.startsWith('roster_session=')),
      false,
      'no session cookie',
    );
    const failed = await auditEvents(app, t, 'login.failed');
    assert.equal((failed[0]!.after as { reason: string }).reason, reason);
    return failed[0]!;
  }

  const idpGroups = async (userId: string) =>
    (
      (await request(app).get(`/api/v1/users/${userId}/idp-groups`).set(t.admin).expect(200)).body.items as {
        displayName: string;
        source: string;
      }[]
    )
      .map((g) => `${g.source}:${g.displayName}`)
      .sort();

  it('signs an existing user in by email, case-insensitively: last login, login.succeeded, and a session the management API accepts', async () => {
    const ada = await buildUser(app, t, { email: 'ada@example.com' });
    const agent = request.agent(app);
    const res = await signIn(agent, 'ADA@Example.COM');
    assert.equal(res.status, 303, res.text);
    assert.equal(res.headers.location, '/api/v1/me');
    const cookie = setCookies(res).find((c) => c.startsWith('roster_session='))!;
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Lax/);
    const me = await agent.get('/api/v1/me').expect(200);
    assert.equal(me.body.user.id, ada.id);
    assert.equal(me.body.user.status, 'active');
    assert.ok(Date.now() - Date.parse(me.body.user.lastLoginAt) < 60_000);
    assert.equal(me.body.permissions.effective.knowledge.level, 'none');
    const ok = await auditEvents(app, t, 'login.succeeded');
    assert.equal(ok[0]!.entity.id, ada.id);
    assert.deepEqual(ok[0]!.after, { connectionId: conn.id, connection: 'Okta', protocol: 'saml' });
    assert.equal(ok[0]!.actor.id, ada.id);
  });

  it('goes back to the page the sign-in started from, and never to another site', async () => {
    await buildUser(app, t, { email: 'ada@example.com' });
    const back = await samlSignIn(request.agent(app), conn, answer('ada@example.com'), {
      returnTo: '/api/v1/tenant?x=1',
    });
    assert.equal(back.headers.location, '/api/v1/tenant?x=1');
    for (const evil of ['https://evil.test/', '//evil.test/x', '/\\evil.test']) {
      const res = await samlSignIn(request.agent(app), conn, answer('ada@example.com'), { returnTo: evil });
      assert.equal(res.headers.location, '/api/v1/me', evil);
    }
  });

  it('accepts an invitation at first sign-in', async () => {
    const invited = await request(app)
      .post('/api/v1/invitations')
      .set(t.admin)
      .send({ email: 'new@example.com', role: 'member' })
      .expect(201);
    const id = invited.body.user?.id ?? invited.body.id;
    const res = await signIn(request.agent(app), 'new@example.com');
    assert.equal(res.status, 303, res.text);
    const user = await request(app).get(`/api/v1/users/${id}`).set(t.admin).expect(200);
    assert.equal(user.body.status, 'active');
    const accepted = await auditEvents(app, t, 'user.invitation_accepted');
    assert.deepEqual(accepted[0]!.after, { status: 'active', via: 'sign_in' });
  });

  it('refuses a suspended user with a page naming the reason, and records login.failed against the user', async () => {
    const ada = await buildUser(app, t, { email: 'ada@example.com' });
    await request(app).patch(`/api/v1/users/${ada.id}`).set(t.admin).send({ status: 'suspended' }).expect(200);
    const agent = request.agent(app);
    const failed = await refused(await signIn(agent, 'ada@example.com'), 403, 'suspended');
    assert.equal(failed.entity.id, ada.id);
    await agent.get('/api/v1/me').expect(401);
    const user = await request(app).get(`/api/v1/users/${ada.id}`).set(t.admin).expect(200);
    assert.equal(user.body.lastLoginAt, null, 'a refused sign-in is not a login');
  });

  it('JIT: unknown people are refused while it is off, become members with no permissions when on, and are refused at the seat limit', async () => {
    await refused(await signIn(request.agent(app), 'newcomer@example.com'), 403, 'jit_disabled');
    await request(app).patch('/api/v1/tenant').set(t.admin).send({ jitProvisioning: true }).expect(200);
    await setUserLimit((await testDb()).knex, t.tenant.slug, 1);
    const agent = request.agent(app);
    assert.equal(
      (await signIn(agent, 'newcomer@example.com', { attributes: { displayName: 'New Comer', role: 'admin' } })).status,
      303,
    );
    const me = await agent.get('/api/v1/me').expect(200);
    assert.equal(me.body.user.source, 'jit');
    assert.equal(me.body.user.role, 'member');
    assert.equal(me.body.user.displayName, 'New Comer');
    assert.ok(
      Object.values(me.body.permissions.effective as Record<string, { level: string }>).every(
        (a) => a.level === 'none',
      ),
    );
    const tenant = await request(app).get('/api/v1/tenant').set(t.admin).expect(200);
    assert.deepEqual(tenant.body.seats, { used: 1, limit: 1 });
    await refused(await signIn(request.agent(app), 'another@example.com'), 403, 'no_seat');
    assert.deepEqual((await request(app).get('/api/v1/tenant').set(t.admin).expect(200)).body.seats, {
      used: 1,
      limit: 1,
    });
    assert.equal((await auditEvents(app, t, 'sso.user.created')).length, 1);
  });

  it('group claims replace the SAML-sourced IdP groups, leave SCIM groups alone, and an absent attribute means none', async () => {
    const ada = await buildUser(app, t, { email: 'ada@example.com' });
    await scimClient(app, t.scimToken)
      .post('/Groups', { schemas: [GROUP], displayName: 'Pushed', members: [{ value: ada.id }] })
      .expect(201);
    await signIn(request.agent(app), 'ada@example.com', { attributes: { groups: ['Eng', 'Ops'] } });
    assert.deepEqual(await idpGroups(ada.id), ['saml:Eng', 'saml:Ops', 'scim:Pushed']);
    await signIn(request.agent(app), 'ada@example.com', { attributes: { groups: ['eng', 'Sales'] } });
    assert.deepEqual(await idpGroups(ada.id), ['saml:Eng', 'saml:Sales', 'scim:Pushed']);
    const changed = await auditEvents(app, t, 'sso.user.groups_changed');
    assert.deepEqual(
      (changed[0]!.after as { added: { displayName: string }[] }).added.map((g) => g.displayName),
      ['Sales'],
    );
    assert.deepEqual(
      (changed[0]!.before as { removed: { displayName: string }[] }).removed.map((g) => g.displayName),
      ['Ops'],
    );
    await signIn(request.agent(app), 'ada@example.com');
    assert.deepEqual(await idpGroups(ada.id), ['scim:Pushed']);
    const scimGroups = await scimClient(app, t.scimToken).get('/Groups').expect(200);
    assert.deepEqual(
      scimGroups.body.Resources.map((g: { displayName: string }) => g.displayName),
      ['Pushed'],
      'claim groups are not SCIM groups',
    );
  });

  it('over TLS, an answer is accepted only in the browser that started the sign-in (no login CSRF)', async () => {
    await buildUser(app, t, { email: 'ada@example.com' });
    const tls = { 'X-Forwarded-Proto': 'https' };
    const mine = request.agent(app);
    const login = await mine.get(pathOf(conn.loginUrl)).set(tls).expect(302);
    const cookie = setCookies(login).find((c) => c.startsWith('roster_saml='))!;
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /Secure/);
    assert.match(cookie, /SameSite=None/);
    const { id } = authnRequestOf(login.headers.location!);
    // Someone else's browser posting this signed answer is refused; the right browser then signs in.
    const elsewhere = await request(app)
      .post(pathOf(conn.acsUrl))
      .set(tls)
      .type('form')
      .send({ SAMLResponse: answer('ada@example.com')(id) });
    await refused(elsewhere, 401, 'other_browser');
    // The test talks plain HTTP behind a pretend TLS proxy, so the Secure cookie is sent by hand.
    const ok = await mine
      .post(pathOf(conn.acsUrl))
      .set(tls)
      .set('Cookie', cookie.split(';')[0]!)
      .type('form')
      .send({ SAMLResponse: answer('ada@example.com')(id) });
    assert.equal(ok.status, 303, ok.text);
  });

  it("names the IdP's own refusal (a status without an assertion), and a junk answer does not use up the pending sign-in", async () => {
    await buildUser(app, t, { email: 'ada@example.com' });
    const agent = request.agent(app);
    const login = await agent.get(pathOf(conn.loginUrl)).expect(302);
    const { id } = authnRequestOf(login.headers.location!);
    const denied = responseXml({ idpEntityId: idp.entityId, destination: conn.acsUrl, inResponseTo: id }, '').replace(
      '<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/>',
      '<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Responder"><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:RequestDenied"/></samlp:StatusCode><samlp:StatusMessage>User is not assigned to this application</samlp:StatusMessage>',
    );
    const refusedByIdp = await agent
      .post(pathOf(conn.acsUrl))
      .type('form')
      .send({ SAMLResponse: Buffer.from(denied).toString('base64') });
    await refused(refusedByIdp, 401, 'idp_error');
    assert.match(refusedByIdp.text, /Responder\/RequestDenied \(User is not assigned to this application\)/);
    // Someone posting junk that names this request id (with an unverifiable signature) …
    const forged = Buffer.from(answer('mallory@example.com')(id), 'base64')
      .toString('utf8')
      .replace(/<ds:SignatureValue>[^<]+/, '<ds:SignatureValue>AAAA');
    await refused(
      await request(app)
        .post(pathOf(conn.acsUrl))
        .type('form')
        .send({ SAMLResponse: Buffer.from(forged).toString('base64') }),
      401,
      'bad_signature',
    );
    // … does not use it up: the genuine answer still signs the person in.
    const ok = await agent
      .post(pathOf(conn.acsUrl))
      .type('form')
      .send({ SAMLResponse: answer('ada@example.com')(id) });
    assert.equal(ok.status, 303, ok.text);
  });

  it('group claims drive the mapping rules: a claim value matches displayName and externalId, and a dropped claim revokes', async () => {
    const ada = await buildUser(app, t, { email: 'ada@example.com' });
    const support = await createGroup(app, t, 'Support');
    const agent = await createAgent(app, t, 'Helpdesk');
    await request(app)
      .post('/api/v1/mapping-rules')
      .set(t.admin)
      .send({
        name: 'Entra support',
        enabled: true,
        match: { source: 'saml', field: 'externalId', operator: 'equals', value: '0b9f-support' },
        actions: {
          groups: [{ groupId: support, role: 'member' }],
          agents: [{ agentId: agent, permission: 'view_use' }],
        },
      })
      .expect(201);
    await signIn(request.agent(app), 'ada@example.com', { attributes: { groups: ['0b9f-support'] } });
    const access = await check(app, t, agent, ada.id);
    assert.equal(access.use, true);
    assert.deepEqual(access.reasons, ['rule "Entra support" grants view_use to members of IdP group "0b9f-support"']);
    await signIn(request.agent(app), 'ada@example.com', { attributes: { groups: ['something-else'] } });
    assert.equal((await check(app, t, agent, ada.id)).use, false);
    const removed = await auditEvents(app, t, 'agent.grant_removed');
    assert.equal(removed[0]!.actor.type, 'rule');
  });

  it("Entra's group overage (groups.link instead of groups) keeps the previous memberships and records a warning", async () => {
    const ada = await buildUser(app, t, { email: 'ada@example.com' });
    await signIn(request.agent(app), 'ada@example.com', { attributes: { groups: ['Eng'] } });
    const res = await signIn(request.agent(app), 'ada@example.com', {
      attributes: {
        'http://schemas.microsoft.com/claims/groups.link': 'https://graph.microsoft.com/v1.0/users/x/getMemberObjects',
      },
    });
    assert.equal(res.status, 303);
    assert.deepEqual(await idpGroups(ada.id), ['saml:Eng']);
    const warned = await auditEvents(app, t, 'sso.groups_overage');
    assert.equal(warned[0]!.entity.id, ada.id);
  });

  it('never sets roles or area permissions from an assertion', async () => {
    const ada = await buildUser(app, t, { email: 'ada@example.com' });
    const agent = request.agent(app);
    await signIn(agent, 'ada@example.com', {
      attributes: { role: 'admin', roles: 'admin', permissions: 'knowledge=edit', groups: ['Admins'] },
    });
    const me = await agent.get('/api/v1/me').expect(200);
    assert.equal(me.body.user.role, 'member');
    assert.equal(me.body.permissions.effective.knowledge.level, 'none');
    await agent.get('/api/v1/api-keys').expect(403);
    assert.equal((await request(app).get(`/api/v1/users/${ada.id}`).set(t.admin).expect(200)).body.role, 'member');
  });

  describe('refuses forged and misdirected responses', () => {
    let victim: string;
    beforeEach(async () => {
      victim = (await buildUser(app, t, { email: 'victim@example.com' })).id;
    });

    it('an unsigned response', async () => {
      await refused(await signIn(request.agent(app), 'victim@example.com', { signing: 'none' }), 401, 'unsigned');
    });

    it('a response signed by a certificate the connection does not trust (its own embedded in KeyInfo)', async () => {
      await refused(
        await signIn(request.agent(app), 'victim@example.com', { key: makeKey('Evil IdP') }),
        401,
        'bad_signature',
      );
    });

    it('an assertion changed after it was signed', async () => {
      await buildUser(app, t, { email: 'mallory@example.com' });
      const tamper = (xml: string) => xml.replace('>mallory@example.com<', '>victim@example.com<');
      await refused(await signIn(request.agent(app), 'mallory@example.com', { tamper }), 401, 'bad_signature');
    });

    it('signature wrapping: an unsigned assertion for the victim that carries a signed one for the attacker', async () => {
      await buildUser(app, t, { email: 'mallory@example.com' });
      const agent = request.agent(app);
      const res = await samlSignIn(agent, conn, (id) => {
        const signed = signElement(
          assertionXml({
            idpEntityId: idp.entityId,
            audience: conn.entityId,
            recipient: conn.acsUrl,
            nameId: 'mallory@example.com',
            inResponseTo: id,
          }),
          'Assertion',
          idp.key,
        );
        const signature = /<ds:Signature[\s\S]*<\/ds:Signature>/.exec(signed)![0];
        const evil = assertionXml({
          idpEntityId: idp.entityId,
          audience: conn.entityId,
          recipient: conn.acsUrl,
          nameId: 'victim@example.com',
          inResponseTo: id,
        }).replace(
          /(<saml:Issuer>[^<]*<\/saml:Issuer>)/,
          `$1${signature.replace('</ds:Signature>', `<ds:Object>${signed}</ds:Object></ds:Signature>`)}`,
        );
        return Buffer.from(
          responseXml({ idpEntityId: idp.entityId, destination: conn.acsUrl, inResponseTo: id }, evil),
        ).toString('base64');
      });
      await refused(res, 401, 'bad_signature');
      await agent.get('/api/v1/me').expect(401);
    });

    it('a second assertion beside the signed one', async () => {
      const res = await samlSignIn(request.agent(app), conn, (id) => {
        const signed = signElement(
          assertionXml({
            idpEntityId: idp.entityId,
            audience: conn.entityId,
            recipient: conn.acsUrl,
            nameId: 'someone@example.com',
            inResponseTo: id,
          }),
          'Assertion',
          idp.key,
        );
        const evil = assertionXml({
          idpEntityId: idp.entityId,
          audience: conn.entityId,
          recipient: conn.acsUrl,
          nameId: 'victim@example.com',
          inResponseTo: id,
        });
        return Buffer.from(
          responseXml({ idpEntityId: idp.entityId, destination: conn.acsUrl, inResponseTo: id }, evil + signed),
        ).toString('base64');
      });
      await refused(res, 401, 'invalid_response');
    });

    it('a comment injected into a signed NameID does not shorten it to the victim', async () => {
      const tamper = (xml: string) =>
        xml.replace('>victim@example.com.evil.test<', '>victim@example.com<!---->.evil.test<');
      const agent = request.agent(app);
      const failed = await refused(
        await signIn(agent, 'victim@example.com.evil.test', { tamper }),
        403,
        'jit_disabled',
      );
      assert.equal(failed.entity.name, 'victim@example.com.evil.test');
      assert.notEqual(failed.entity.id, victim);
    });

    it('an assertion for another audience', async () => {
      await refused(
        await signIn(request.agent(app), 'victim@example.com', { audience: 'https://other-sp.test/metadata' }),
        401,
        'wrong_audience',
      );
    });

    it('an expired assertion', async () => {
      const past = Date.now() - 60 * 60_000;
      await refused(
        await signIn(request.agent(app), 'victim@example.com', { notOnOrAfter: past, notBefore: past - 60_000 }),
        401,
        'expired',
      );
    });

    it('a replayed response: its InResponseTo is used up', async () => {
      let first = '';
      const ok = await samlSignIn(request.agent(app), conn, (id) => (first = answer('victim@example.com')(id)));
      assert.equal(ok.status, 303);
      const again = await request(app).post(pathOf(conn.acsUrl)).type('form').send({ SAMLResponse: first });
      await refused(again, 401, 'replayed');
    });

    it("a response to another connection's request", async () => {
      await request(app)
        .patch(`/api/v1/sso-connections/${conn.id}`)
        .set(t.admin)
        .send({ domains: ['example.com'] })
        .expect(200);
      const other = (
        await request(app)
          .post('/api/v1/sso-connections')
          .set(t.admin)
          .send({ protocol: 'saml', name: 'Other', idpMetadataXml: idp.metadata(), domains: ['other.example'] })
          .expect(201)
      ).body;
      const login = await request(app).get(pathOf(other.loginUrl)).expect(302);
      const { id } = authnRequestOf(login.headers.location!);
      const res = await request(app)
        .post(pathOf(conn.acsUrl))
        .type('form')
        .send({ SAMLResponse: answer('victim@example.com')(id) });
      await refused(res, 401, 'unknown_request');
    });

    it('a wrong Recipient, Destination, confirmation method or issuer', async () => {
      await refused(
        await signIn(request.agent(app), 'victim@example.com', {
          recipient: 'https://other-sp.test/acs',
          destination: conn.acsUrl,
        }),
        401,
        'wrong_recipient',
      );
      await refused(
        await signIn(request.agent(app), 'victim@example.com', { destination: 'https://other-sp.test/acs' }),
        401,
        'wrong_destination',
      );
      await refused(
        await signIn(request.agent(app), 'victim@example.com', {
          method: 'urn:oasis:names:tc:SAML:2.0:cm:holder-of-key',
        }),
        401,
        'no_bearer_confirmation',
      );
      const otherIssuer = (xml: string) =>
        xml.replace(
          `<saml:Issuer>${idp.entityId}</saml:Issuer><samlp:Status>`,
          '<saml:Issuer>https://other-idp.test</saml:Issuer><samlp:Status>',
        );
      assert.equal(
        (await signIn(request.agent(app), 'victim@example.com', { tamper: otherIssuer })).status,
        303,
        'the unsigned Response issuer is not what counts',
      );
      const other = new TestSamlIdp('https://other-idp.test');
      const res = await samlSignIn(request.agent(app), conn, (id) =>
        Buffer.from(
          responseXml(
            { idpEntityId: other.entityId, destination: conn.acsUrl, inResponseTo: id },
            signElement(
              assertionXml({
                idpEntityId: 'https://other-idp.test',
                audience: conn.entityId,
                recipient: conn.acsUrl,
                nameId: 'victim@example.com',
                inResponseTo: id,
              }),
              'Assertion',
              idp.key,
            ),
          ),
        ).toString('base64'),
      );
      await refused(res, 401, 'wrong_issuer');
    });

    it('a valid Response signature does not excuse a broken assertion signature', async () => {
      await buildUser(app, t, { email: 'mallory@example.com' });
      const res = await samlSignIn(request.agent(app), conn, (id) => {
        const assertion = signElement(
          assertionXml({
            idpEntityId: idp.entityId,
            audience: conn.entityId,
            recipient: conn.acsUrl,
            nameId: 'mallory@example.com',
            inResponseTo: id,
          }),
          'Assertion',
          idp.key,
        ).replace('>mallory@example.com<', '>victim@example.com<');
        return Buffer.from(
          signElement(
            responseXml({ idpEntityId: idp.entityId, destination: conn.acsUrl, inResponseTo: id }, assertion),
            'Response',
            idp.key,
          ),
        ).toString('base64');
      });
      await refused(res, 401, 'bad_signature');
    });
  });

  it('a signed Response with an unsigned assertion is enough, and so is a signed assertion alone (Entra)', async () => {
    await buildUser(app, t, { email: 'ada@example.com' });
    assert.equal((await signIn(request.agent(app), 'ada@example.com', { signing: 'response' })).status, 303);
    assert.equal((await signIn(request.agent(app), 'ada@example.com', { signing: 'assertion' })).status, 303);
    assert.equal((await signIn(request.agent(app), 'ada@example.com', { signing: 'both' })).status, 303);
  });

  it('trusts every certificate of a rollover', async () => {
    await buildUser(app, t, { email: 'ada@example.com' });
    const next = makeKey('Next IdP key');
    await request(app)
      .patch(`/api/v1/sso-connections/${conn.id}`)
      .set(t.admin)
      .send({ idpCertificates: [idp.key.certificate, next.certificate] })
      .expect(200);
    assert.equal((await signIn(request.agent(app), 'ada@example.com', { key: next })).status, 303);
    assert.equal((await signIn(request.agent(app), 'ada@example.com')).status, 303);
  });

  it('IdP-initiated sign-in is refused by default; when allowed, it works once per assertion and honours RelayState', async () => {
    await buildUser(app, t, { email: 'ada@example.com' });
    const unsolicited = () =>
      idp.response({ audience: conn.entityId, recipient: conn.acsUrl, nameId: 'ada@example.com', inResponseTo: null });
    await refused(
      await request(app).post(pathOf(conn.acsUrl)).type('form').send({ SAMLResponse: unsolicited() }),
      401,
      'unsolicited',
    );
    await request(app)
      .patch(`/api/v1/sso-connections/${conn.id}`)
      .set(t.admin)
      .send({ allowIdpInitiated: true })
      .expect(200);
    const body = unsolicited();
    const ok = await request(app)
      .post(pathOf(conn.acsUrl))
      .type('form')
      .send({ SAMLResponse: body, RelayState: '/api/v1/tenant' });
    assert.equal(ok.status, 303, ok.text);
    assert.equal(ok.headers.location, '/api/v1/tenant');
    await refused(
      await request(app).post(pathOf(conn.acsUrl)).type('form').send({ SAMLResponse: body }),
      401,
      'replayed',
    );
  });

  it('a disabled connection refuses to start or finish a sign-in', async () => {
    await buildUser(app, t, { email: 'ada@example.com' });
    const login = await request(app).get(pathOf(conn.loginUrl)).expect(302);
    const { id } = authnRequestOf(login.headers.location!);
    await request(app).patch(`/api/v1/sso-connections/${conn.id}`).set(t.admin).send({ enabled: false }).expect(200);
    await refused(
      await request(app)
        .post(pathOf(conn.acsUrl))
        .type('form')
        .send({ SAMLResponse: answer('ada@example.com')(id) }),
      401,
      'connection_disabled',
    );
    await refused(await request(app).get(pathOf(conn.loginUrl)), 401, 'connection_disabled');
  });

  it('reads only the posted SAMLResponse: a SAML message in the query of the login start or the ACS changes nothing', async () => {
    await buildUser(app, t, { email: 'ada@example.com' });
    const agent = request.agent(app);
    const login = await agent
      .get(pathOf(conn.loginUrl))
      .query({ SAMLRequest: 'junk', SAMLResponse: 'junk' })
      .expect(302);
    const { id } = authnRequestOf(login.headers.location!);
    const res = await agent
      .post(`${pathOf(conn.acsUrl)}?SAMLRequest=junk&SAMLResponse=junk`)
      .type('form')
      .send({ SAMLResponse: answer('ada@example.com')(id) });
    assert.equal(res.status, 303, res.text);
  });

  it('starts with an unsigned AuthnRequest to the IdP that names this ACS and asks for no particular authentication method', async () => {
    const login = await request(app).get(pathOf(conn.loginUrl)).expect(302);
    const req = authnRequestOf(login.headers.location!);
    assert.equal(req.url.origin + req.url.pathname, idp.ssoUrl);
    assert.ok(req.xml.includes(`AssertionConsumerServiceURL="${conn.acsUrl}"`));
    assert.ok(req.xml.includes(`>${conn.entityId}</saml:Issuer>`));
    assert.ok(!req.xml.includes('RequestedAuthnContext'));
    assert.equal(req.url.searchParams.get('Signature'), null);
  });

  describe('with an SP key pair (SAML_SP_KEY_FILE, SAML_SP_CERT_FILE)', () => {
    const sp = makeKey('Roster SP');
    let dir: string;
    let withKeys: Express;
    before(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'roster-sp-'));
      fs.writeFileSync(path.join(dir, 'sp.key'), sp.privateKey);
      fs.writeFileSync(path.join(dir, 'sp.crt'), sp.certificate);
      withKeys = await testApp({
        SAML_SP_KEY_FILE: path.join(dir, 'sp.key'),
        SAML_SP_CERT_FILE: path.join(dir, 'sp.crt'),
      });
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('serves SP metadata: entity id and ACS, and the SP certificate for signing and encryption only when there is one', async () => {
      const plain = await request(app).get(pathOf(conn.metadataUrl)).expect(200);
      assert.match(plain.headers['content-type']!, /samlmetadata\+xml/);
      assert.ok(plain.text.includes(`entityID="${conn.entityId}"`));
      assert.ok(plain.text.includes(`Location="${conn.acsUrl}"`));
      assert.ok(!plain.text.includes('KeyDescriptor'));
      const md = await request(withKeys).get(pathOf(conn.metadataUrl)).expect(200);
      assert.ok(md.text.includes('use="signing"') && md.text.includes('use="encryption"'), md.text);
      assert.ok(md.text.replace(/\s/g, '').includes(sp.certificate.replace(/-----[A-Z ]+-----|\s/g, '')));
    });

    it('signs AuthnRequests', async () => {
      const login = await request(withKeys).get(pathOf(conn.loginUrl)).expect(302);
      const url = new URL(login.headers.location!);
      assert.ok(url.searchParams.get('Signature'));
      assert.equal(url.searchParams.get('SigAlg'), 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256');
    });

    it('decrypts an encrypted assertion, which must still be signed', async () => {
      await buildUser(app, t, { email: 'ada@example.com' });
      const encrypted = (signed: boolean) => (id: string) => {
        const a = assertionXml({
          idpEntityId: idp.entityId,
          audience: conn.entityId,
          recipient: conn.acsUrl,
          nameId: 'ada@example.com',
          inResponseTo: id,
        });
        return Buffer.from(
          responseXml(
            { idpEntityId: idp.entityId, destination: conn.acsUrl, inResponseTo: id },
            encryptAssertion(signed ? signElement(a, 'Assertion', idp.key) : a, sp.certificate),
          ),
        ).toString('base64');
      };
      const agent = request.agent(withKeys);
      assert.equal((await samlSignIn(agent, conn, encrypted(true))).status, 303);
      await agent.get('/api/v1/me').expect(200);
      await refused(await samlSignIn(request.agent(withKeys), conn, encrypted(false)), 401, 'bad_signature');
    });
  });

  it('answers unknown tenants and connections with a page, not a redirect', async () => {
    const res = await request(app).get(`/auth/no-such-tenant/${conn.id}/login`).expect(404);
    assert.match(res.text, /Unknown organisation/);
    await request(app).get(`/auth/${t.tenant.slug}/01a00000-0000-7000-8000-000000000000/login`).expect(404);
    const other = await buildTenant();
    await request(app).get(`/auth/${other.tenant.slug}/${conn.id}/login`).expect(404);
  });
});
