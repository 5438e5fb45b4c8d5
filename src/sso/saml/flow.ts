import { MultiSamlStrategy } from '@node-saml/passport-saml';
import { SamlStatusError, ValidateInResponseTo, type Profile, type SamlConfig } from '@node-saml/node-saml';
import { DOMParser } from '@xmldom/xmldom';
import type { Request, Response } from 'express';
import type { Knex } from 'knex';
import type { Strategy } from 'passport';
import type { ClaimGroups, SignInIdentity } from '../../provisioning/sign-in.js';
import type { SamlConnection } from '../../connections/connections.js';
import { LoginFailure } from '../failure.js';
import { authenticate, authenticator, holdRedirect } from '../passport.js';
import { PENDING_TTL_MS, rememberAssertion, SamlRequestStore, sweepExpired } from '../pending.js';
import type { SamlUrls } from '../../connections/urls.js';
import type { SpCredentials } from './sp.js';

const PROTOCOL_NS = 'urn:oasis:names:tc:SAML:2.0:protocol';
const ASSERTION_NS = 'urn:oasis:names:tc:SAML:2.0:assertion';
const DSIG_NS = 'http://www.w3.org/2000/09/xmldsig#';
const BEARER = 'urn:oasis:names:tc:SAML:2.0:cm:bearer';
/** Entra's marker when a user has too many groups to list: a link to Graph instead of the values. */
const TRANSIENT_NAME_ID = 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient';
const ENTRA_GROUPS_LINK = 'http://schemas.microsoft.com/claims/groups.link';
const CLOCK_SKEW_MS = 2 * 60_000;

const EMAIL_ATTRIBUTES = [
  'email',
  'mail',
  'emailAddress',
  'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress',
  'urn:oid:0.9.2342.19200300.100.1.3',
];
const NAME_ATTRIBUTES = [
  'displayName',
  'http://schemas.microsoft.com/identity/claims/displayname',
  'name',
  'urn:oid:2.16.840.1.113730.3.1.241',
];
const EMAILISH = /^[^\s@]+@[^\s@]+$/;

/** Everything a SAML step needs about where it runs. */
export interface SamlSite {
  db: Knex;
  tenantId: string;
  connection: SamlConnection;
  urls: SamlUrls;
  sp: SpCredentials | undefined;
}

export interface SamlSignIn {
  identity: SignInIdentity;
  groups: ClaimGroups;
  returnTo: string | null;
}

/** What the strategy needs about the sign-in at hand, carried by the request it sees. */
interface SamlStep {
  site: SamlSite;
  cache: SamlRequestStore;
  signed: { response: boolean; assertion: boolean };
}

type SamlStepRequest = Request & { samlStep: SamlStep };

/** passport-saml's MultiSamlStrategy, whose redirect to the IdP waits for the browser's cookie. */
class ConnectionSamlStrategy extends MultiSamlStrategy {
  override authenticate(...[req, options]: Parameters<MultiSamlStrategy['authenticate']>): void {
    holdRedirect(this, options);
    super.authenticate(req, options);
  }
}

/**
 * One strategy for every connection: getSamlOptions gives node-saml the options of the tenant's
 * connection at hand. It hands over the verified profile; Roster's own checks run on it after.
 * (passport-saml is typed against Express 4's Request, passport's types against Express 5's.)
 */
authenticator.use(
  new ConnectionSamlStrategy(
    {
      passReqToCallback: true,
      getSamlOptions: (req, done) => {
        const { site, cache, signed } = (req as unknown as SamlStepRequest).samlStep;
        done(null, samlOptions(site, cache, signed));
      },
    },
    (_req, profile, done) => done(null, profile as unknown as Record<string, unknown>),
    (_req, _profile, done) => done(new Error('single logout is not supported')),
  ) as unknown as Strategy,
);

/**
 * The request as the strategy sees it: only a SAMLResponse (never a SAMLRequest or a query, so
 * its single-logout and redirect-binding paths stay shut) and the sign-in at hand.
 */
function stepRequest(req: Request, samlStep: SamlStep, body: Record<string, string>): Request {
  return Object.create(req, { query: { value: {} }, body: { value: body }, samlStep: { value: samlStep } }) as Request;
}

function samlOptions(
  site: SamlSite,
  cache: SamlRequestStore,
  signed: { response: boolean; assertion: boolean },
): SamlConfig {
  const c = site.connection.saml;
  return {
    issuer: site.urls.entityId,
    audience: site.urls.entityId,
    callbackUrl: site.urls.acsUrl,
    entryPoint: c.idpSsoUrl,
    idpIssuer: c.idpEntityId,
    idpCert: c.idpCertificates,
    identifierFormat: c.nameIdFormat,
    // Requesting "password" would make IdPs refuse people who signed in with MFA or passkeys.
    disableRequestedAuthnContext: true,
    // A signed Response or a signed Assertion is enough, and every signature present must verify.
    wantAuthnResponseSigned: signed.response,
    wantAssertionsSigned: signed.assertion,
    acceptedClockSkewMs: CLOCK_SKEW_MS,
    validateInResponseTo: c.allowIdpInitiated ? ValidateInResponseTo.ifPresent : ValidateInResponseTo.always,
    requestIdExpirationPeriodMs: PENDING_TTL_MS,
    cacheProvider: cache,
    ...(site.sp
      ? { privateKey: site.sp.privateKey, decryptionPvk: site.sp.privateKey, signatureAlgorithm: 'sha256' as const }
      : {}),
  };
}

/**
 * Starts a sign-in: an AuthnRequest whose id is remembered for its answer. `send` sends the
 * strategy's redirect to the IdP, once the caller has bound the request id to the browser.
 */
export async function startSamlSignIn(
  site: SamlSite,
  returnTo: string | null,
  req: Request,
  res: Response,
): Promise<{ requestId: string; send: () => void }> {
  await sweepExpired(site.db, site.tenantId, Date.now());
  const cache = new SamlRequestStore(site.db, { tenantId: site.tenantId, connectionId: site.connection.id }, returnTo);
  const step = await authenticate(
    'saml',
    stepRequest(req, { site, cache, signed: { response: true, assertion: true } }, {}),
    res,
  );
  if (step.kind !== 'redirect' || !cache.savedKey) throw new Error('the SAML strategy did not redirect to the IdP');
  return { requestId: cache.savedKey, send: step.send };
}

type El = Element;

function childElements(el: El, ns: string, name: string): El[] {
  const out: El[] = [];
  for (let i = 0; i < el.childNodes.length; i++) {
    const c = el.childNodes[i] as El;
    if (c.nodeType === 1 && c.localName === name && c.namespaceURI === ns) out.push(c);
  }
  return out;
}

interface Envelope {
  responseSigned: boolean;
  assertionSigned: boolean;
  encrypted: boolean;
  inResponseTo: string | null;
  destination: string | null;
}

/**
 * An IdP that refuses a sign-in ("user not assigned to this application") answers with a
 * non-success status and no assertion. Only a refusal is read from it, so it need not be signed.
 */
function refusedByIdp(root: El): void {
  const status = childElements(root, PROTOCOL_NS, 'Status')[0];
  const code = status ? childElements(status, PROTOCOL_NS, 'StatusCode')[0] : undefined;
  const value = code?.getAttribute('Value') ?? '';
  if (!value || value.endsWith(':Success')) return;
  const sub = code ? childElements(code, PROTOCOL_NS, 'StatusCode')[0]?.getAttribute('Value') : undefined;
  const message = status
    ? childElements(status, PROTOCOL_NS, 'StatusMessage')[0]?.textContent?.trim().slice(0, 200)
    : undefined;
  const codes = [value, sub].filter(Boolean).map((v) => v!.split(':').pop());
  throw new LoginFailure(
    'idp_error',
    `the identity provider refused the sign-in: ${codes.join('/')}${message ? ` (${message})` : ''}`,
  );
}

/** What the unverified envelope says, read only to choose checks; nothing in it is trusted. */
function inspect(xml: string): Envelope {
  const fail = () => {
    throw new LoginFailure('invalid_response', 'the SAML response is not well-formed XML');
  };
  const doc = new DOMParser({
    errorHandler: { warning: () => undefined, error: fail, fatalError: fail },
  }).parseFromString(xml, 'text/xml');
  const root = doc?.documentElement as El | null;
  if (root?.localName !== 'Response' || root.namespaceURI !== PROTOCOL_NS)
    throw new LoginFailure('invalid_response', 'the message is not a SAML Response');
  const assertions = childElements(root, ASSERTION_NS, 'Assertion');
  const encrypted = childElements(root, ASSERTION_NS, 'EncryptedAssertion');
  if (assertions.length + encrypted.length === 0) refusedByIdp(root);
  if (assertions.length + encrypted.length !== 1)
    throw new LoginFailure('invalid_response', 'a SAML response must carry exactly one assertion');
  const responseSigned = childElements(root, DSIG_NS, 'Signature').length > 0;
  const assertionSigned = assertions.length === 1 && childElements(assertions[0]!, DSIG_NS, 'Signature').length > 0;
  if (!responseSigned && !assertionSigned && !encrypted.length)
    throw new LoginFailure('unsigned', 'the SAML response and its assertion are both unsigned');
  return {
    responseSigned,
    assertionSigned,
    encrypted: encrypted.length > 0,
    inResponseTo: root.getAttribute('InResponseTo') || null,
    destination: root.getAttribute('Destination') || null,
  };
}

/**
 * node-saml reports failures as plain Errors; their messages are all there is to tell a forged
 * signature from an expired assertion for the audit log's reason.
 */
async function classify(err: unknown, cache: SamlRequestStore, inResponseTo: string | null): Promise<LoginFailure> {
  if (err instanceof LoginFailure) return err;
  if (err instanceof SamlStatusError)
    return new LoginFailure(
      'idp_error',
      `the identity provider answered with an error: ${err.message.replace(/^SAML provider returned /, '')}`,
    );
  const message = err instanceof Error ? err.message : String(err);
  if (/InResponseTo/i.test(message)) {
    if (inResponseTo && (await cache.wasUsed(inResponseTo)))
      return new LoginFailure('replayed', 'this SAML response was already used');
    return new LoginFailure(
      'unknown_request',
      'the SAML response answers no sign-in started here (or it expired); start again',
    );
  }
  if (/signature|certificate|too many transforms/i.test(message))
    return new LoginFailure(
      'bad_signature',
      'the SAML response signature does not verify against the configured IdP certificates',
    );
  // node-saml drops subject confirmations outside their time window first, then finds none.
  if (/expired|not yet valid|too old|no valid subject confirmation/i.test(message))
    return new LoginFailure('expired', 'the SAML assertion is expired or not yet valid');
  if (/audience/i.test(message))
    return new LoginFailure('wrong_audience', 'the SAML assertion is meant for another service provider');
  return new LoginFailure('invalid_response', 'the SAML response could not be processed');
}

type Xml2Js = Record<string, unknown>;
const first = (v: unknown): Xml2Js | undefined => (Array.isArray(v) ? (v[0] as Xml2Js | undefined) : undefined);
const attrs = (v: Xml2Js | undefined): Record<string, string> => (v?.$ as Record<string, string> | undefined) ?? {};

/**
 * What node-saml leaves to its caller, checked on the verified assertion: the issuer is the
 * configured IdP, and a bearer SubjectConfirmation names this ACS as Recipient, is still valid,
 * and answers the same request as the Response.
 */
function checkAssertion(
  site: SamlSite,
  profile: Profile,
  inResponseTo: string | null,
): { assertionId: string; notOnOrAfter: number } {
  const assertion = first([(profile.getAssertion?.() as Xml2Js | undefined)?.Assertion]);
  if (!assertion) throw new LoginFailure('invalid_response', 'the SAML response carries no assertion');
  if (profile.issuer !== site.connection.saml.idpEntityId)
    throw new LoginFailure(
      'wrong_issuer',
      'the SAML assertion was issued by another identity provider than this connection names',
    );
  const assertionId = attrs(assertion).ID;
  if (!assertionId) throw new LoginFailure('invalid_response', 'the SAML assertion has no ID');
  const confirmations = ((first(assertion.Subject)?.SubjectConfirmation as Xml2Js[] | undefined) ?? []).filter(
    (sc) => attrs(sc).Method === BEARER,
  );
  if (!confirmations.length)
    throw new LoginFailure('no_bearer_confirmation', 'the SAML assertion has no bearer subject confirmation');
  const data = confirmations.map((sc) => attrs(first(sc.SubjectConfirmationData)));
  const forUs = data.filter((d) => d.Recipient === site.urls.acsUrl);
  if (!forUs.length)
    throw new LoginFailure('wrong_recipient', 'the SAML assertion names another Recipient than this ACS URL');
  const now = Date.now();
  const valid = forUs.filter(
    (d) =>
      d.NotOnOrAfter &&
      Date.parse(d.NotOnOrAfter) > now - CLOCK_SKEW_MS &&
      (!d.NotBefore || Date.parse(d.NotBefore) <= now + CLOCK_SKEW_MS),
  );
  if (!valid.length)
    throw new LoginFailure('expired', 'the SAML subject confirmation is expired or has no NotOnOrAfter');
  const answering = valid.find((d) => (d.InResponseTo ?? null) === inResponseTo);
  if (!answering)
    throw new LoginFailure(
      'unknown_request',
      'the SAML subject confirmation answers another request than the response',
    );
  const conditions = attrs(first(assertion.Conditions));
  const limits = [
    Date.parse(answering.NotOnOrAfter!),
    conditions.NotOnOrAfter ? Date.parse(conditions.NotOnOrAfter) : NaN,
  ].filter((n) => !Number.isNaN(n));
  return { assertionId, notOnOrAfter: Math.max(...limits) };
}

function values(v: unknown): string[] {
  const list = Array.isArray(v) ? v : v === undefined || v === null ? [] : [v];
  return list.filter((x): x is string => typeof x === 'string');
}

function attribute(profile: Profile, configured: string | null, fallbacks: string[]): string | null {
  const all = (profile.attributes ?? {}) as Record<string, unknown>;
  for (const name of configured ? [configured] : fallbacks) {
    const v = values(all[name])[0]?.trim();
    if (v) return v;
  }
  return null;
}

function identityOf(site: SamlSite, profile: Profile): SignInIdentity {
  const a = site.connection.saml.attributes;
  const nameId = profile.nameID?.trim() || null;
  const email = attribute(profile, a.email, EMAIL_ATTRIBUTES) ?? (nameId && EMAILISH.test(nameId) ? nameId : null);
  // SAML has no email_verified: the signed assertion is the IdP's word, trusted within the
  // connection's domains (sign-in checks them). A transient NameID is new at every sign-in, so
  // it binds nothing.
  const subject = profile.nameIDFormat === TRANSIENT_NAME_ID ? null : nameId;
  return {
    subject,
    email,
    emailVerified: true,
    userName: nameId,
    externalId: nameId,
    displayName: attribute(profile, a.name, NAME_ATTRIBUTES),
  };
}

function groupsOf(site: SamlSite, profile: Profile): ClaimGroups {
  const name = site.connection.saml.attributes.groups;
  if (!name) return { kind: 'unmanaged' };
  const all = (profile.attributes ?? {}) as Record<string, unknown>;
  if (all[ENTRA_GROUPS_LINK] !== undefined) return { kind: 'overage' };
  return { kind: 'listed', names: values(all[name]) };
}

/**
 * Verifies a SAMLResponse posted to the ACS and answers who signed in. Beyond node-saml's
 * signature, audience and time checks: the Response's Destination, the assertion's issuer,
 * Recipient and bearer method, InResponseTo used once, and the assertion id used once.
 */
/**
 * `browser`: over TLS the browser that started a sign-in holds its request id in a cookie, and
 * an answer to that request is accepted only from that browser, so nobody can post their own
 * signed response from someone else's browser and sign them in as themselves (login CSRF).
 */
export async function handleSamlResponse(
  site: SamlSite,
  samlResponse: string,
  relayState: string | null,
  browser: { bound: boolean; requestId: string | undefined },
  req: Request,
  res: Response,
): Promise<SamlSignIn> {
  const xml = Buffer.from(samlResponse, 'base64').toString('utf8');
  const envelope = inspect(xml);
  if (browser.bound && envelope.inResponseTo && browser.requestId !== envelope.inResponseTo) {
    throw new LoginFailure(
      'other_browser',
      'this sign-in was started in another browser (or its cookie expired); start again from this browser',
    );
  }
  const scope = { tenantId: site.tenantId, connectionId: site.connection.id };
  if (!envelope.inResponseTo && !site.connection.saml.allowIdpInitiated) {
    throw new LoginFailure(
      'unsolicited',
      'this connection accepts only answers to sign-ins started here (IdP-initiated sign-in is off)',
    );
  }
  if (envelope.destination !== null ? envelope.destination !== site.urls.acsUrl : envelope.responseSigned) {
    throw new LoginFailure(
      'wrong_destination',
      'the SAML response is addressed to another Destination than this ACS URL',
    );
  }
  const cache = new SamlRequestStore(site.db, scope);
  let profile: Profile;
  try {
    const signed = {
      response: envelope.responseSigned,
      assertion: envelope.assertionSigned || (envelope.encrypted && !envelope.responseSigned),
    };
    const step = await authenticate(
      'saml',
      stepRequest(req, { site, cache, signed }, { SAMLResponse: samlResponse }),
      res,
    );
    if (step.kind !== 'success') throw new LoginFailure('invalid_response', 'the SAML response carries no sign-in');
    profile = step.user as Profile;
  } catch (err) {
    throw await classify(err, cache, envelope.inResponseTo);
  }
  const subject = profile.nameID ?? null;
  try {
    const checked = checkAssertion(site, profile, envelope.inResponseTo);
    if (envelope.inResponseTo && !(await cache.claim(envelope.inResponseTo))) {
      throw new LoginFailure('replayed', 'this SAML response was already used');
    }
    if (!(await rememberAssertion(site.db, scope, checked.assertionId, checked.notOnOrAfter + CLOCK_SKEW_MS))) {
      throw new LoginFailure('replayed', 'this SAML assertion was already used');
    }
  } catch (err) {
    if (err instanceof LoginFailure) throw new LoginFailure(err.code, err.message, subject);
    throw err;
  }
  return {
    identity: identityOf(site, profile),
    groups: groupsOf(site, profile),
    returnTo: envelope.inResponseTo ? cache.returnTo : relayState,
  };
}
