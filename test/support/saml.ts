import {
  constants,
  createCipheriv,
  generateKeyPairSync,
  publicEncrypt,
  randomBytes,
  sign,
  type KeyObject,
} from 'node:crypto';
import { inflateRawSync } from 'node:zlib';
import { SignedXml } from 'xml-crypto';

/** A key pair with a self-signed certificate, made at test time: no fixture key to leak or expire. */
export interface TestKey {
  privateKey: string;
  certificate: string;
}

function der(tag: number, content: Buffer): Buffer {
  const n = content.length;
  const len = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, content]);
}
const seq = (...parts: Buffer[]) => der(0x30, Buffer.concat(parts));
const set = (...parts: Buffer[]) => der(0x31, Buffer.concat(parts));
const integer = (bytes: Buffer) => der(0x02, bytes[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes);
const utf8 = (s: string) => der(0x0c, Buffer.from(s, 'utf8'));
const utcTime = (d: Date) =>
  der(0x17, Buffer.from(d.toISOString().replace(/^\d\d(\d\d)-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d).*$/, '$1$2$3$4$5$6Z')));
function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number);
  const out = [40 * a! + b!];
  for (const n of rest) {
    const chunk = [n & 0x7f];
    for (let v = n >> 7; v > 0; v >>= 7) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return der(0x06, Buffer.from(out));
}

/** An RSA key and a minimal self-signed X.509 v3 certificate (sha256WithRSAEncryption). */
export function makeKey(commonName = 'Test IdP'): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const algorithm = seq(oid('1.2.840.113549.1.1.11'), Buffer.from([0x05, 0x00]));
  const name = seq(set(seq(oid('2.5.4.3'), utf8(commonName))));
  const now = Date.now();
  // A DER INTEGER is signed and minimal: a serial whose first byte had the top bit set would be
  // negative, and one starting with 0x00 not minimal; strict certificate parsers refuse both.
  const serial = randomBytes(8);
  serial[0] = (serial[0]! & 0x7f) | 0x40;
  const tbs = seq(
    der(0xa0, integer(Buffer.from([2]))),
    integer(serial),
    algorithm,
    name,
    seq(utcTime(new Date(now - 86_400_000)), utcTime(new Date(now + 365 * 86_400_000))),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
  );
  const signature = sign('sha256', tbs, privateKey as KeyObject);
  const cert = seq(tbs, algorithm, der(0x03, Buffer.concat([Buffer.from([0]), signature])));
  const b64 = cert
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n');
  return {
    privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    certificate: `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`,
  };
}

const xmlEscape = (s: string) =>
  s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);
const iso = (ms: number) => new Date(ms).toISOString();

export const BEARER = 'urn:oasis:names:tc:SAML:2.0:cm:bearer';

export interface AssertionOptions {
  idpEntityId: string;
  audience: string;
  recipient: string;
  nameId: string;
  /** Defaults to emailAddress. */
  nameIdFormat?: string;
  inResponseTo?: string | null;
  attributes?: Record<string, string | string[]>;
  /** Defaults to a fresh one. */
  id?: string;
  method?: string;
  /** Epoch ms; defaults to now + 5 minutes. */
  notOnOrAfter?: number;
  notBefore?: number;
}

export function assertionXml(o: AssertionOptions): string {
  const now = Date.now();
  const notOnOrAfter = iso(o.notOnOrAfter ?? now + 5 * 60_000);
  const notBefore = iso(o.notBefore ?? now - 60_000);
  const irt = o.inResponseTo ? ` InResponseTo="${xmlEscape(o.inResponseTo)}"` : '';
  const attrs = Object.entries(o.attributes ?? {})
    .map(
      ([name, v]) =>
        `<saml:Attribute Name="${xmlEscape(name)}">${(Array.isArray(v) ? v : [v]).map((x) => `<saml:AttributeValue>${xmlEscape(x)}</saml:AttributeValue>`).join('')}</saml:Attribute>`,
    )
    .join('');
  return (
    `<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="${o.id ?? `_a${randomBytes(16).toString('hex')}`}" Version="2.0" IssueInstant="${iso(now)}">` +
    `<saml:Issuer>${xmlEscape(o.idpEntityId)}</saml:Issuer>` +
    `<saml:Subject><saml:NameID Format="${o.nameIdFormat ?? 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress'}">${xmlEscape(o.nameId)}</saml:NameID>` +
    `<saml:SubjectConfirmation Method="${o.method ?? BEARER}"><saml:SubjectConfirmationData${irt} NotOnOrAfter="${notOnOrAfter}" Recipient="${xmlEscape(o.recipient)}"/></saml:SubjectConfirmation></saml:Subject>` +
    `<saml:Conditions NotBefore="${notBefore}" NotOnOrAfter="${notOnOrAfter}"><saml:AudienceRestriction><saml:Audience>${xmlEscape(o.audience)}</saml:Audience></saml:AudienceRestriction></saml:Conditions>` +
    `<saml:AuthnStatement AuthnInstant="${iso(now)}" SessionIndex="_s${randomBytes(8).toString('hex')}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>` +
    (attrs ? `<saml:AttributeStatement>${attrs}</saml:AttributeStatement>` : '') +
    `</saml:Assertion>`
  );
}

export function responseXml(
  o: { idpEntityId: string; destination: string | null; inResponseTo?: string | null },
  assertion: string,
): string {
  const dest = o.destination === null ? '' : ` Destination="${xmlEscape(o.destination)}"`;
  const irt = o.inResponseTo ? ` InResponseTo="${xmlEscape(o.inResponseTo)}"` : '';
  return (
    `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r${randomBytes(16).toString('hex')}" Version="2.0" IssueInstant="${iso(Date.now())}"${dest}${irt}>` +
    `<saml:Issuer>${xmlEscape(o.idpEntityId)}</saml:Issuer>` +
    `<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>` +
    assertion +
    `</samlp:Response>`
  );
}

/** Signs the element named by `localName` (the first one) with an enveloped signature after its Issuer, as IdPs do. */
export function signElement(xml: string, localName: 'Assertion' | 'Response', key: TestKey): string {
  const sig = new SignedXml({
    privateKey: key.privateKey,
    publicCert: key.certificate,
    signatureAlgorithm: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
    canonicalizationAlgorithm: 'http://www.w3.org/2001/10/xml-exc-c14n#',
  });
  sig.addReference({
    xpath: `(//*[local-name(.)='${localName}'])[1]`,
    transforms: ['http://www.w3.org/2000/09/xmldsig#enveloped-signature', 'http://www.w3.org/2001/10/xml-exc-c14n#'],
    digestAlgorithm: 'http://www.w3.org/2001/04/xmlenc#sha256',
  });
  sig.computeSignature(xml, {
    prefix: 'ds',
    location: { reference: `(//*[local-name(.)='${localName}'])[1]/*[local-name(.)='Issuer']`, action: 'after' },
  });
  return sig.getSignedXml();
}

/**
 * An assertion encrypted for the SP as IdPs do it (XML Encryption: AES-256-GCM content, the key
 * wrapped with RSA-OAEP for the SP certificate).
 */
export function encryptAssertion(assertion: string, spCertificate: string): string {
  const key = randomBytes(32);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([iv, cipher.update(assertion, 'utf8'), cipher.final(), cipher.getAuthTag()]);
  const wrapped = publicEncrypt({ key: spCertificate, padding: constants.RSA_PKCS1_OAEP_PADDING }, key);
  return (
    `<saml:EncryptedAssertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">` +
    `<xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" Type="http://www.w3.org/2001/04/xmlenc#Element">` +
    `<xenc:EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#aes256-gcm"/>` +
    `<ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><xenc:EncryptedKey>` +
    `<xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"/>` +
    `<xenc:CipherData><xenc:CipherValue>${wrapped.toString('base64')}</xenc:CipherValue></xenc:CipherData>` +
    `</xenc:EncryptedKey></ds:KeyInfo>` +
    `<xenc:CipherData><xenc:CipherValue>${body.toString('base64')}</xenc:CipherValue></xenc:CipherData>` +
    `</xenc:EncryptedData></saml:EncryptedAssertion>`
  );
}

export type Signing = 'assertion' | 'response' | 'both' | 'none';

/** A test identity provider: its entity id, SSO URL, signing key, and responses made to order. */
export class TestSamlIdp {
  readonly key = makeKey();
  constructor(
    readonly entityId = `https://idp.test/${randomBytes(4).toString('hex')}`,
    readonly ssoUrl = 'https://idp.test/sso',
  ) {}

  /** A signed (as asked) SAMLResponse, base64 as the browser posts it. */
  response(
    o: Omit<AssertionOptions, 'idpEntityId'> & {
      destination?: string | null;
      signing?: Signing;
      key?: TestKey;
      tamper?: (xml: string) => string;
    },
  ): string {
    let xml = assertionXml({ ...o, idpEntityId: this.entityId });
    const key = o.key ?? this.key;
    const signing = o.signing ?? 'assertion';
    if (signing === 'assertion' || signing === 'both') xml = signElement(xml, 'Assertion', key);
    xml = responseXml(
      {
        idpEntityId: this.entityId,
        destination: o.destination === undefined ? o.recipient : o.destination,
        inResponseTo: o.inResponseTo,
      },
      xml,
    );
    if (signing === 'response' || signing === 'both') xml = signElement(xml, 'Response', key);
    if (o.tamper) xml = o.tamper(xml);
    return Buffer.from(xml, 'utf8').toString('base64');
  }

  metadata(): string {
    const body = this.key.certificate.replace(/-----[A-Z ]+-----|\s/g, '');
    return (
      `<?xml version="1.0"?><md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="${xmlEscape(this.entityId)}">` +
      `<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">` +
      `<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>${body}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>` +
      `<md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>` +
      `<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="${xmlEscape(this.ssoUrl)}/post"/>` +
      `<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="${xmlEscape(this.ssoUrl)}"/>` +
      `</md:IDPSSODescriptor></md:EntityDescriptor>`
    );
  }
}

/** The AuthnRequest Roster sent in a redirect to the IdP (HTTP-Redirect binding: deflated, base64). */
export function authnRequestOf(location: string): { id: string; xml: string; url: URL } {
  const url = new URL(location);
  const xml = inflateRawSync(Buffer.from(url.searchParams.get('SAMLRequest')!, 'base64')).toString('utf8');
  const id = /\sID="([^"]+)"/.exec(xml)?.[1];
  if (!id) throw new Error(`no ID in the AuthnRequest: ${xml}`);
  return { id, xml, url };
}

type Agent = import('supertest').Agent;

export interface SamlConnectionView {
  id: string;
  loginUrl: string;
  acsUrl: string;
  entityId: string;
  metadataUrl: string;
}

/** The path of an absolute Roster URL, for supertest. */
export const pathOf = (url: string) => {
  const u = new URL(url);
  return u.pathname + u.search;
};

/**
 * Starts a sign-in at Roster (as a browser following the login link), then posts the IdP's
 * answer to the ACS. `answer` makes the response from the AuthnRequest id.
 */
export async function samlSignIn(
  agent: Agent,
  conn: SamlConnectionView,
  answer: (requestId: string) => string,
  opts: { returnTo?: string } = {},
) {
  const login = await agent
    .get(pathOf(conn.loginUrl))
    .query(opts.returnTo ? { returnTo: opts.returnTo } : {})
    .expect(302);
  const { id } = authnRequestOf(login.headers.location!);
  const post = agent.post(pathOf(conn.acsUrl)).type('form');
  // Behind a pretend TLS proxy the browser-binding cookie is Secure, which the agent keeps back
  // over plain HTTP; a browser on HTTPS would send it, so the test does.
  const binding = setCookies(login).find((c) => c.startsWith('roster_saml='));
  if (binding) post.set('Cookie', binding.split(';')[0]!);
  return post.send({ SAMLResponse: answer(id) });
}

/** The Set-Cookie lines of a response (supertest types them loosely). */
export function setCookies(res: { headers: Record<string, unknown> }): string[] {
  const v = res.headers['set-cookie'];
  return Array.isArray(v) ? v.map(String) : typeof v === 'string' ? [v] : [];
}
