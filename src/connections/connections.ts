import type { Knex } from 'knex';
import { currentRead } from '../db/dialect.js';
import { newId } from '../db/ids.js';
import { isUniqueViolation } from '../db/errors.js';
import { parseJson, toBool, toMs } from '../db/rows.js';
import { listRules } from '../mapping/store.js';
import { Conflict, InvalidInput, NotFound, type FieldError } from '../errors.js';
import { uniqueKey } from '../directory/model/value-key.js';
import { normalizeCertificate } from './certificates.js';
import { MetadataError, parseIdpMetadata } from './idp-metadata.js';

export type Protocol = 'saml' | 'oidc';
/** How a signed-in identity finds its Roster user: by email, or by the SCIM userName or externalId. */
export type MatchBy = 'email' | 'userName' | 'externalId';
export type TokenEndpointAuthMethod = 'client_secret_basic' | 'client_secret_post';

/** Asymmetric JWS algorithms only: `none` is never accepted, HS* would make the client secret a signing key. */
export const ID_TOKEN_ALGS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const;

export const UNSPECIFIED_NAME_ID = 'urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified';

export interface SamlSettings {
  idpEntityId: string;
  idpSsoUrl: string;
  /** PEM; several while the IdP rolls its signing certificate over. */
  idpCertificates: string[];
  nameIdFormat: string;
  /** Attribute names; null email/name: the common names are tried; null groups: groups are not synced. */
  attributes: { email: string | null; name: string | null; groups: string | null };
  allowIdpInitiated: boolean;
}

export interface OidcSettings {
  issuer: string;
  clientId: string;
  scopes: string[];
  /** Null: this connection does not sync groups. */
  groupsClaim: string | null;
  tokenEndpointAuthMethod: TokenEndpointAuthMethod;
  idTokenSigningAlgs: string[];
  /** The IdP verifies every address it asserts but sends no email_verified claim (Entra ID). */
  trustEmailWithoutVerifiedClaim: boolean;
}

interface Base {
  tenantId: string;
  id: string;
  name: string;
  enabled: boolean;
  matchBy: MatchBy;
  /** Email domains this IdP may assert at a first sign-in; empty: any (one enabled connection only). */
  domains: string[];
  version: number;
  createdAt: number;
  updatedAt: number;
}

export type SamlConnection = Base & { protocol: 'saml'; saml: SamlSettings };
/** The client secret is kept as given: the token endpoint needs it. It is never presented. */
export type OidcConnection = Base & { protocol: 'oidc'; oidc: OidcSettings; clientSecret: string };
export type Connection = SamlConnection | OidcConnection;

/** A create body, or a change merged over the current connection. */
export interface ConnectionInput {
  protocol: Protocol;
  name: string;
  enabled?: boolean;
  matchBy?: MatchBy;
  domains?: string[];
  trustEmailWithoutVerifiedClaim?: boolean;
  issuer?: string;
  clientId?: string;
  clientSecret?: string;
  scopes?: string[];
  groupsClaim?: string | null;
  tokenEndpointAuthMethod?: TokenEndpointAuthMethod;
  idTokenSigningAlgs?: string[];
  idpMetadataXml?: string;
  idpEntityId?: string;
  idpSsoUrl?: string;
  idpCertificates?: string[];
  nameIdFormat?: string;
  attributes?: { email?: string | null; name?: string | null; groups?: string | null };
  allowIdpInitiated?: boolean;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** https, or http on a loopback host so a local IdP works in development and tests. */
export function isAcceptableIdpUrl(text: string): boolean {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return false;
  }
  return u.protocol === 'https:' || (u.protocol === 'http:' && LOOPBACK.has(u.hostname));
}

export function isLoopbackUrl(text: string): boolean {
  return LOOPBACK.has(new URL(text).hostname);
}

class Fields {
  readonly errors: FieldError[] = [];
  add(path: string, message: string): void {
    this.errors.push({ path: `body.${path}`, message });
  }
  check(): void {
    if (this.errors.length) {
      const first = this.errors[0]!;
      throw new InvalidInput('invalid_connection', `${first.path} ${first.message}`, { fields: this.errors });
    }
  }
}

function oidcSettings(
  input: ConnectionInput,
  current: OidcConnection | undefined,
  f: Fields,
): { settings: OidcSettings; clientSecret: string } {
  const prev = current?.oidc;
  const issuer = input.issuer ?? prev?.issuer;
  const clientId = input.clientId ?? prev?.clientId;
  const clientSecret = input.clientSecret ?? current?.clientSecret;
  if (!issuer) f.add('issuer', 'is required for an OIDC connection');
  else if (!isAcceptableIdpUrl(issuer))
    f.add('issuer', 'must be an https URL (http only on 127.0.0.1, localhost or ::1)');
  else if (/[?#]/.test(issuer)) f.add('issuer', 'must not have a query or fragment');
  if (!clientId) f.add('clientId', 'is required for an OIDC connection');
  if (!clientSecret) f.add('clientSecret', 'is required for an OIDC connection');
  const scopes = input.scopes ?? prev?.scopes ?? ['openid', 'email', 'profile'];
  if (!scopes.includes('openid')) f.add('scopes', 'must include openid');
  for (const key of [
    'idpMetadataXml',
    'idpEntityId',
    'idpSsoUrl',
    'idpCertificates',
    'nameIdFormat',
    'attributes',
    'allowIdpInitiated',
  ] as const) {
    if (input[key] !== undefined) f.add(key, 'applies to SAML connections only');
  }
  return {
    settings: {
      issuer: issuer ?? '',
      clientId: clientId ?? '',
      scopes,
      groupsClaim: input.groupsClaim !== undefined ? input.groupsClaim : (prev?.groupsClaim ?? null),
      tokenEndpointAuthMethod: input.tokenEndpointAuthMethod ?? prev?.tokenEndpointAuthMethod ?? 'client_secret_basic',
      idTokenSigningAlgs: input.idTokenSigningAlgs ?? prev?.idTokenSigningAlgs ?? ['RS256'],
      trustEmailWithoutVerifiedClaim:
        input.trustEmailWithoutVerifiedClaim ?? prev?.trustEmailWithoutVerifiedClaim ?? false,
    },
    clientSecret: clientSecret ?? '',
  };
}

function samlSettings(input: ConnectionInput, current: SamlConnection | undefined, f: Fields): SamlSettings {
  const prev = current?.saml;
  let fromMetadata: ReturnType<typeof parseIdpMetadata> | undefined;
  if (input.idpMetadataXml !== undefined) {
    try {
      fromMetadata = parseIdpMetadata(input.idpMetadataXml);
    } catch (err) {
      if (!(err instanceof MetadataError)) throw err;
      f.add('idpMetadataXml', err.message);
    }
  }
  const idpEntityId = input.idpEntityId ?? fromMetadata?.entityId ?? prev?.idpEntityId;
  const idpSsoUrl = input.idpSsoUrl ?? fromMetadata?.ssoUrl ?? prev?.idpSsoUrl;
  const certificates: string[] = [];
  if (input.idpCertificates) {
    input.idpCertificates.forEach((c, i) => {
      const pem = normalizeCertificate(c);
      if (pem) certificates.push(pem);
      else f.add(`idpCertificates.${i}`, 'is not a PEM or base64 X.509 certificate');
    });
  } else certificates.push(...(fromMetadata?.certificates ?? prev?.idpCertificates ?? []));
  if (!idpEntityId && !f.errors.length)
    f.add('idpEntityId', 'is required for a SAML connection (or give idpMetadataXml)');
  if (!idpSsoUrl && !f.errors.length) f.add('idpSsoUrl', 'is required for a SAML connection (or give idpMetadataXml)');
  else if (idpSsoUrl && !isAcceptableIdpUrl(idpSsoUrl))
    f.add('idpSsoUrl', 'must be an https URL (http only on 127.0.0.1, localhost or ::1)');
  if (!certificates.length && !f.errors.length)
    f.add('idpCertificates', 'at least one IdP signing certificate is required (or give idpMetadataXml)');
  for (const key of [
    'issuer',
    'clientId',
    'clientSecret',
    'scopes',
    'groupsClaim',
    'tokenEndpointAuthMethod',
    'idTokenSigningAlgs',
    'trustEmailWithoutVerifiedClaim',
  ] as const) {
    if (input[key] !== undefined) f.add(key, 'applies to OIDC connections only');
  }
  const attrs = input.attributes;
  const pick = (k: 'email' | 'name' | 'groups') =>
    attrs && attrs[k] !== undefined ? attrs[k]! || null : (prev?.attributes[k] ?? null);
  return {
    idpEntityId: idpEntityId ?? '',
    idpSsoUrl: idpSsoUrl ?? '',
    idpCertificates: certificates,
    nameIdFormat: input.nameIdFormat ?? prev?.nameIdFormat ?? UNSPECIFIED_NAME_ID,
    attributes: { email: pick('email'), name: pick('name'), groups: pick('groups') },
    allowIdpInitiated: input.allowIdpInitiated ?? prev?.allowIdpInitiated ?? false,
  };
}

interface Prepared {
  name: string;
  enabled: boolean;
  matchBy: MatchBy;
  domains: string[];
  settings: SamlSettings | OidcSettings;
  clientSecret: string | null;
}

/** Checks a connection's settings as a whole, naming every bad field. */
function prepare(input: ConnectionInput, current?: Connection): Prepared {
  const f = new Fields();
  const name = input.name.trim();
  if (!name) f.add('name', 'must not be blank');
  let settings: SamlSettings | OidcSettings;
  let clientSecret: string | null = null;
  if (input.protocol === 'oidc') {
    const o = oidcSettings(input, current?.protocol === 'oidc' ? current : undefined, f);
    settings = o.settings;
    clientSecret = o.clientSecret;
  } else settings = samlSettings(input, current?.protocol === 'saml' ? current : undefined, f);
  f.check();
  const domains = [...new Set(input.domains ?? current?.domains ?? [])];
  return {
    name,
    enabled: input.enabled ?? current?.enabled ?? true,
    matchBy: input.matchBy ?? current?.matchBy ?? 'email',
    domains,
    settings,
    clientSecret,
  };
}

type Row = Record<string, unknown>;

function connectionFromRow(r: Row): Connection {
  const base: Base = {
    tenantId: String(r.tenant_id),
    id: String(r.id),
    name: String(r.name),
    enabled: toBool(r.enabled),
    matchBy: r.match_by as MatchBy,
    domains: parseJson<string[]>(r.domains_json, []),
    version: Number(r.version),
    createdAt: toMs(r.created_at)!,
    updatedAt: toMs(r.updated_at)!,
  };
  if (r.protocol === 'oidc') {
    const oidc = parseJson<OidcSettings>(r.settings_json, {} as OidcSettings);
    return {
      ...base,
      protocol: 'oidc',
      oidc: { ...oidc, trustEmailWithoutVerifiedClaim: oidc.trustEmailWithoutVerifiedClaim ?? false },
      clientSecret: String(r.client_secret ?? ''),
    };
  }
  return { ...base, protocol: 'saml', saml: parseJson<SamlSettings>(r.settings_json, {} as SamlSettings) };
}

function nameTaken(name: string, cause: unknown): Conflict {
  return new Conflict('connection_name_taken', `an SSO connection named "${name}" already exists in this tenant`, {
    cause,
  });
}

function notFound(id: string): NotFound {
  return new NotFound('connection_not_found', `no SSO connection with id "${id}"`);
}

export async function insertConnection(
  trx: Knex,
  tenantId: string,
  input: ConnectionInput,
  now: number,
): Promise<Connection> {
  const p = prepare(input);
  const row = {
    tenant_id: tenantId,
    id: newId(),
    protocol: input.protocol,
    name: p.name,
    name_key: uniqueKey('name', p.name, 200),
    enabled: p.enabled,
    match_by: p.matchBy,
    domains_json: JSON.stringify(p.domains),
    settings_json: JSON.stringify(p.settings),
    client_secret: p.clientSecret,
    version: 1,
    created_at: now,
    updated_at: now,
  };
  try {
    await trx('sso_connections').insert(row);
  } catch (err) {
    if (isUniqueViolation(err)) throw nameTaken(p.name, err);
    throw err;
  }
  return connectionFromRow(row);
}

export async function getConnection(db: Knex, tenantId: string, id: string): Promise<Connection | undefined> {
  const row = await db('sso_connections').where({ tenant_id: tenantId, id }).first();
  return row ? connectionFromRow(row) : undefined;
}

export async function requireConnection(db: Knex, tenantId: string, id: string): Promise<Connection> {
  const c = await getConnection(db, tenantId, id);
  if (!c) throw notFound(id);
  return c;
}

export async function listConnections(db: Knex, tenantId: string): Promise<Connection[]> {
  return (await db('sso_connections').where({ tenant_id: tenantId }).orderBy('created_at').orderBy('id')).map(
    connectionFromRow,
  );
}

/** Takes a connection's row for a change (version bump, row lock until commit) and returns it as it is now. */
export async function lockConnection(trx: Knex, tenantId: string, id: string, now: number): Promise<Connection> {
  const changed = await trx('sso_connections')
    .where({ tenant_id: tenantId, id })
    .update({ version: trx.raw('version + 1'), updated_at: now });
  if (changed === 0) throw notFound(id);
  return (await getConnection(trx, tenantId, id))!;
}

/** Writes a locked connection's new settings: the change is merged over what it had. */
export async function writeConnection(
  trx: Knex,
  locked: Connection,
  change: Omit<ConnectionInput, 'protocol' | 'name'> & { name?: string },
): Promise<Connection> {
  const p = prepare({ ...change, protocol: locked.protocol, name: change.name ?? locked.name }, locked);
  const cols = {
    name: p.name,
    name_key: uniqueKey('name', p.name, 200),
    enabled: p.enabled,
    match_by: p.matchBy,
    domains_json: JSON.stringify(p.domains),
    settings_json: JSON.stringify(p.settings),
    client_secret: p.clientSecret,
  };
  try {
    await trx('sso_connections').where({ tenant_id: locked.tenantId, id: locked.id }).update(cols);
  } catch (err) {
    if (isUniqueViolation(err)) throw nameTaken(p.name, err);
    throw err;
  }
  return (await getConnection(trx, locked.tenantId, locked.id))!;
}

export async function deleteConnection(trx: Knex, tenantId: string, id: string): Promise<void> {
  if ((await trx('sso_connections').where({ tenant_id: tenantId, id }).delete()) === 0) throw notFound(id);
}

/** Whether an address is in one of the domains (exactly: sub-domains are listed on their own). */
export function inDomains(email: string, domains: string[]): boolean {
  const at = email.lastIndexOf('@');
  return at > 0 && domains.includes(email.slice(at + 1).toLowerCase());
}

/**
 * Two IdPs never share a trust space: with two or more enabled connections, each must say which
 * email domains it speaks for (unless `onlyOverlaps`: a change that narrows nothing new), and no
 * domain belongs to two of them. Called after a create or change, in its transaction; the tenant
 * row is taken first, and the list read current (on MariaDB the transaction's snapshot predates
 * the lock), so two connections enabled at once are checked one after the other.
 */
export async function assertDomainsWhereShared(
  trx: Knex,
  tenantId: string,
  opts: { onlyOverlaps?: boolean } = {},
): Promise<void> {
  await trx('tenants')
    .where({ id: tenantId })
    .update({ user_limit: trx.raw('user_limit') });
  const rows = await currentRead(
    trx('sso_connections').where({ tenant_id: tenantId, enabled: true }).orderBy('created_at').orderBy('id'),
  );
  const enabled = (rows as Row[]).map(connectionFromRow);
  const missing = enabled.filter((c) => !c.domains.length);
  if (enabled.length >= 2 && missing.length && !opts.onlyOverlaps) {
    throw new Conflict(
      'connection_domains_required',
      `with ${enabled.length} enabled SSO connections each needs its email domains; set domains on: ${missing.map((c) => `"${c.name}"`).join(', ')}`,
      { details: { connections: missing.map((c) => ({ id: c.id, name: c.name })) } },
    );
  }
  const owner = new Map<string, Connection>();
  for (const c of enabled) {
    for (const d of c.domains) {
      const other = owner.get(d);
      if (other && other.id !== c.id) {
        throw new Conflict(
          'connection_domains_overlap',
          `the domain ${d} is on both "${other.name}" and "${c.name}": one IdP speaks for a domain`,
          {
            details: { domain: d, connections: [other, c].map((x) => ({ id: x.id, name: x.name })) },
          },
        );
      }
      owner.set(d, c);
    }
  }
}

/**
 * A rule's match names a connection exactly when its source is `connection`, and one of this
 * tenant's. A protocol-wide source (`saml`, `oidc`) trusts every connection of the protocol and
 * `any` every connection: once there are two, another IdP could assert the groups such a rule
 * was written for, so an enabled rule must name its connection (a disabled one may stay, so an
 * old rule can still be switched off). Connections count enabled or not: their claim groups
 * outlive a disable.
 */
export async function connectionMatchErrors(
  db: Knex,
  tenantId: string,
  match: { source: string; connectionId?: string },
  enabled = true,
): Promise<FieldError[]> {
  if (match.source !== 'connection') {
    if (match.connectionId !== undefined)
      return [{ path: 'body.match.connectionId', message: 'applies only with source connection' }];
    if (!enabled || (match.source !== 'saml' && match.source !== 'oidc' && match.source !== 'any')) return [];
    const all = await listConnections(db, tenantId);
    const reached = match.source === 'any' ? all : all.filter((c) => c.protocol === match.source);
    if (reached.length < 2) return [];
    return [
      {
        path: 'body.match.source',
        message: `${match.source} would trust ${reached.length} SSO connections (${reached.map((c) => `"${c.name}"`).join(', ')}); use source "connection" with match.connectionId, or "scim"`,
      },
    ];
  }
  if (match.connectionId === undefined)
    return [{ path: 'body.match.connectionId', message: 'is required with source connection' }];
  return (await getConnection(db, tenantId, match.connectionId))
    ? []
    : [{ path: 'body.match.connectionId', message: `no SSO connection "${match.connectionId}"` }];
}

/**
 * Creating or enabling a connection must not hand it groups that enabled protocol-wide or `any`
 * rules were written for: with a second connection of the protocol (or any second connection)
 * they would match its claims, so the change is refused naming them.
 */
export async function assertNoSharedRules(trx: Knex, tenantId: string, c: Connection): Promise<void> {
  const all = await listConnections(trx, tenantId);
  const sameProtocol = all.filter((x) => x.protocol === c.protocol).length;
  const rules = (await listRules(trx, tenantId, { enabledOnly: true })).filter(
    (r) => (r.match.source === c.protocol && sameProtocol > 1) || (r.match.source === 'any' && all.length > 1),
  );
  if (!rules.length) return;
  throw new Conflict(
    'protocol_rules_present',
    `mapping rules that trust every ${c.protocol === 'saml' ? 'SAML' : 'OIDC'} connection would also match "${c.name}": give them source "connection" (or "scim") first: ${rules.map((r) => `"${r.name}"`).join(', ')}`,
    { details: { rules: rules.map((r) => ({ id: r.id, name: r.name, source: r.match.source })) } },
  );
}
