import type { Knex } from 'knex';
import type { AppDeps } from '../http/deps.js';
import type { Ctx } from '../context.js';
import { inChunks } from '../db/batch.js';
import { requireUser } from '../directory/users.js';
import { syncAfterDirectoryChange } from '../provisioning/mapping.js';
import { bindingsOf, unbind } from '../connections/bindings.js';
import { requireAdmin } from '../access/principal.js';
import { recordEvent } from '../audit/record.js';
import { endConnectionSessions } from '../provisioning/sessions.js';
import {
  assertDomainsWhereShared,
  assertNoSharedRules,
  deleteConnection,
  ID_TOKEN_ALGS,
  insertConnection,
  listConnections,
  lockConnection,
  requireConnection,
  writeConnection,
  type Connection,
  type ConnectionInput,
} from '../connections/connections.js';
import { certificateInfo } from '../connections/certificates.js';
import { loginUrl, oidcRedirectUri, samlUrls } from '../connections/urls.js';
import type { Api } from './api.js';
import type { commonSchemas } from './schemas.js';
import { lockMapping } from '../mapping/lock.js';

const iso = (ms: number) => new Date(ms).toISOString();

const MAX_DOMAINS = 50;
/** A lowercase DNS name of two or more labels (IDNs in their xn-- form). */
const DOMAIN_PATTERN = '^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$';

/** A connection as the API shows it: the OIDC client secret is never returned, only whether one is set. */
export function presentConnection(c: Connection, publicBaseUrl: string, tenantSlug: string) {
  const common = {
    id: c.id,
    protocol: c.protocol,
    name: c.name,
    enabled: c.enabled,
    matchBy: c.matchBy,
    domains: c.domains,
    loginUrl: loginUrl(publicBaseUrl, tenantSlug, c.id),
    createdAt: iso(c.createdAt),
    updatedAt: iso(c.updatedAt),
  };
  if (c.protocol === 'oidc') {
    return {
      ...common,
      issuer: c.oidc.issuer,
      clientId: c.oidc.clientId,
      clientSecretSet: c.clientSecret !== '',
      scopes: c.oidc.scopes,
      groupsClaim: c.oidc.groupsClaim,
      tokenEndpointAuthMethod: c.oidc.tokenEndpointAuthMethod,
      idTokenSigningAlgs: c.oidc.idTokenSigningAlgs,
      trustEmailWithoutVerifiedClaim: c.oidc.trustEmailWithoutVerifiedClaim,
      redirectUri: oidcRedirectUri(publicBaseUrl, tenantSlug, c.id),
    };
  }
  return {
    ...common,
    idpEntityId: c.saml.idpEntityId,
    idpSsoUrl: c.saml.idpSsoUrl,
    idpCertificates: c.saml.idpCertificates,
    idpCertificateDetails: c.saml.idpCertificates.map(certificateInfo),
    nameIdFormat: c.saml.nameIdFormat,
    attributes: c.saml.attributes,
    allowIdpInitiated: c.saml.allowIdpInitiated,
    ...samlUrls(publicBaseUrl, tenantSlug, c.id),
  };
}

/** Who issues the subjects a connection binds: the OIDC issuer and client, or the SAML IdP's entity id. */
function idpIdentity(c: Connection): string {
  return c.protocol === 'oidc' ? JSON.stringify([c.oidc.issuer, c.oidc.clientId]) : c.saml.idpEntityId;
}

/** What the audit log keeps of a connection: its settings, never the secret or whole certificates. */
function audited(c: Connection) {
  if (c.protocol === 'oidc') return { name: c.name, enabled: c.enabled, matchBy: c.matchBy, domains: c.domains, ...c.oidc };
  const { idpCertificates, ...saml } = c.saml;
  return { name: c.name, enabled: c.enabled, matchBy: c.matchBy, domains: c.domains, ...saml, idpCertificates: idpCertificates.map((p) => certificateInfo(p).fingerprintSha256) };
}

export function registerSsoConnections(api: Api, deps: AppDeps, common: ReturnType<typeof commonSchemas>): void {
  const { db, config } = deps;
  const nullableName = { type: ['string', 'null'], maxLength: 255 };
  const settable = {
    name: { type: 'string', minLength: 1, maxLength: 200 },
    enabled: { type: 'boolean' },
    matchBy: {
      enum: ['email', 'userName', 'externalId'],
      description: "How a first sign-in through this connection finds its user: email (case-insensitive), or the SCIM userName or externalId; later sign-ins match the bound IdP subject",
    },
    domains: {
      type: 'array',
      maxItems: MAX_DOMAINS,
      uniqueItems: true,
      items: { type: 'string', minLength: 3, maxLength: 253, pattern: DOMAIN_PATTERN },
      description:
        'Email domains (lowercase DNS names, exact: list sub-domains too) this IdP may assert at a first sign-in; empty: any. Required on every enabled connection once a tenant has two enabled connections',
    },
    trustEmailWithoutVerifiedClaim: {
      type: 'boolean',
      description: 'OIDC: count the email claim as verified when the IdP sends no email_verified (Entra ID); default false. An explicit email_verified: false is never trusted',
    },
    issuer: { type: 'string', maxLength: 1000, description: 'OIDC: the issuer URL (discovery at /.well-known/openid-configuration); https, or http on loopback' },
    clientId: { type: 'string', minLength: 1, maxLength: 500 },
    clientSecret: { type: 'string', minLength: 1, maxLength: 2000, writeOnly: true, description: 'OIDC: stored to call the token endpoint; never returned' },
    scopes: { type: 'array', minItems: 1, maxItems: 50, uniqueItems: true, items: { type: 'string', maxLength: 255, pattern: '^[\\x21\\x23-\\x5B\\x5D-\\x7E]+$' } },
    groupsClaim: { ...nullableName, description: 'OIDC: the ID-token claim listing groups (Okta: groups; Entra: groups); null: groups are not synced' },
    tokenEndpointAuthMethod: { enum: ['client_secret_basic', 'client_secret_post'] },
    idTokenSigningAlgs: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: [...ID_TOKEN_ALGS] }, description: 'OIDC: accepted ID-token algorithms (default RS256); none and HS* never' },
    idpMetadataXml: { type: 'string', minLength: 1, maxLength: 500_000, writeOnly: true, description: 'SAML: the IdP metadata document; fills idpEntityId, idpSsoUrl and idpCertificates' },
    idpEntityId: { type: 'string', minLength: 1, maxLength: 1000 },
    idpSsoUrl: { type: 'string', minLength: 1, maxLength: 2000 },
    idpCertificates: { type: 'array', minItems: 1, maxItems: 10, items: { type: 'string', minLength: 1, maxLength: 20_000 }, description: 'SAML: PEM signing certificates (several during a rollover)' },
    nameIdFormat: { type: 'string', minLength: 1, maxLength: 255 },
    attributes: {
      type: 'object',
      additionalProperties: false,
      properties: { email: nullableName, name: nullableName, groups: nullableName },
      description: 'SAML attribute names; email/name null: common names are tried; groups null: groups are not synced',
    },
    allowIdpInitiated: { type: 'boolean', description: 'SAML: accept responses the IdP sends unasked (off by default)' },
  };
  const connection = api.schema('SsoConnection', {
    type: 'object',
    required: ['id', 'protocol', 'name', 'enabled', 'matchBy', 'domains', 'loginUrl', 'createdAt', 'updatedAt'],
    properties: {
      id: common.id,
      protocol: { enum: ['saml', 'oidc'] },
      name: { type: 'string' },
      enabled: { type: 'boolean' },
      matchBy: { enum: ['email', 'userName', 'externalId'] },
      domains: { type: 'array', items: { type: 'string' } },
      loginUrl: { type: 'string', description: 'Where a person starts signing in' },
      createdAt: common.timestamp,
      updatedAt: common.timestamp,
      issuer: { type: 'string' },
      clientId: { type: 'string' },
      clientSecretSet: { type: 'boolean' },
      scopes: { type: 'array', items: { type: 'string' } },
      groupsClaim: { type: ['string', 'null'] },
      tokenEndpointAuthMethod: { type: 'string' },
      idTokenSigningAlgs: { type: 'array', items: { type: 'string' } },
      trustEmailWithoutVerifiedClaim: { type: 'boolean' },
      redirectUri: { type: 'string', description: 'OIDC: register this at the IdP' },
      idpEntityId: { type: 'string' },
      idpSsoUrl: { type: 'string' },
      idpCertificates: { type: 'array', items: { type: 'string' } },
      idpCertificateDetails: {
        type: 'array',
        items: { type: 'object', required: ['fingerprintSha256', 'subject', 'notAfter'], properties: { fingerprintSha256: { type: 'string' }, subject: { type: 'string' }, notAfter: common.timestamp } },
      },
      nameIdFormat: { type: 'string' },
      attributes: { type: 'object', properties: { email: { type: ['string', 'null'] }, name: { type: ['string', 'null'] }, groups: { type: ['string', 'null'] } } },
      allowIdpInitiated: { type: 'boolean' },
      entityId: { type: 'string', description: 'SAML: the SP entity ID (audience) to give the IdP' },
      acsUrl: { type: 'string', description: 'SAML: the assertion consumer service URL (HTTP-POST)' },
      metadataUrl: { type: 'string', description: 'SAML: the SP metadata' },
    },
  });
  const present = (c: Connection, slug: string) => presentConnection(c, config.publicBaseUrl, slug);
  const entity = (c: Connection) => ({ type: 'sso_connection', id: c.id, name: c.name });

  api.add({
    method: 'get',
    path: '/sso-connections',
    operationId: 'listSsoConnections',
    summary: "The tenant's SAML and OIDC sign-in connections",
    tag: 'SSO',
    responses: { 200: { description: 'Every connection', schema: { type: 'object', required: ['items'], properties: { items: { type: 'array', items: connection } } } } },
    handler: async (req, res) => {
      requireAdmin(req.principal!, 'manage SSO connections');
      res.json({ items: (await listConnections(db.knex, req.ctx!.tenantId)).map((c) => present(c, req.auth!.tenant.slug)) });
    },
  });

  api.add({
    method: 'post',
    path: '/sso-connections',
    operationId: 'createSsoConnection',
    summary: 'Add a SAML or OIDC identity provider',
    description:
      'OIDC: issuer, clientId and clientSecret are required. SAML: idpMetadataXml, or idpEntityId + idpSsoUrl + idpCertificates. The answer carries what to configure at the IdP: redirectUri (OIDC) or entityId, acsUrl and metadataUrl (SAML).',
    tag: 'SSO',
    body: { type: 'object', required: ['protocol', 'name'], additionalProperties: false, properties: { protocol: { enum: ['saml', 'oidc'] }, ...settable } },
    responses: { 201: { description: 'Created', schema: connection } },
    handler: async (req, res, { body }) => {
      requireAdmin(req.principal!, 'manage SSO connections');
      const c = await db.tx(async (trx) => {
        // Connections decide what rules match (claim groups, protocol-wide sources): the mapping
        // lock comes first, exclusive, as for a rule change (src/mapping/lock.ts).
        await lockMapping(trx, req.ctx!.tenantId, 'exclusive');
        const created = await insertConnection(trx, req.ctx!.tenantId, body as ConnectionInput, req.ctx!.now.getTime());
        if (created.enabled) {
          await assertDomainsWhereShared(trx, req.ctx!.tenantId);
          await assertNoSharedRules(trx, req.ctx!.tenantId, created);
        }
        await recordEvent(trx, req.ctx!, { event: 'sso_connection.created', entity: entity(created), before: null, after: audited(created) });
        return created;
      });
      res.status(201).json(present(c, req.auth!.tenant.slug));
    },
  });

  api.add({
    method: 'get',
    path: '/sso-connections/{id}',
    operationId: 'getSsoConnection',
    summary: 'One SSO connection',
    tag: 'SSO',
    responses: { 200: { description: 'The connection', schema: connection } },
    handler: async (req, res, { params }) => {
      requireAdmin(req.principal!, 'manage SSO connections');
      res.json(present(await requireConnection(db.knex, req.ctx!.tenantId, params.id!), req.auth!.tenant.slug));
    },
  });

  api.add({
    method: 'patch',
    path: '/sso-connections/{id}',
    operationId: 'updateSsoConnection',
    summary: 'Change an SSO connection; disabling it ends the sessions signed in through it',
    description: 'Fields are merged over the current settings; the protocol cannot change. A new clientSecret replaces the stored one.',
    tag: 'SSO',
    body: { type: 'object', additionalProperties: false, minProperties: 1, properties: settable },
    responses: { 200: { description: 'The connection after the change', schema: connection } },
    handler: async (req, res, { params, body }) => {
      requireAdmin(req.principal!, 'manage SSO connections');
      const change = body as Omit<ConnectionInput, 'protocol'>;
      const c = await db.tx(async (trx) => {
        await lockMapping(trx, req.ctx!.tenantId, 'exclusive');
        const locked = await lockConnection(trx, req.ctx!.tenantId, params.id!, req.ctx!.now.getTime());
        const updated = await writeConnection(trx, locked, change);
        // Only what widens a trust space is refused: enabling, or emptying the domains. Adding
        // domains to one of several connections that lack them (migration 009) must pass.
        const widens = !locked.enabled || (locked.domains.length > 0 && !updated.domains.length);
        const domainsChanged = JSON.stringify(locked.domains) !== JSON.stringify(updated.domains);
        if (updated.enabled && (widens || domainsChanged)) await assertDomainsWhereShared(trx, req.ctx!.tenantId, { onlyOverlaps: !widens });
        if (updated.enabled && !locked.enabled) await assertNoSharedRules(trx, req.ctx!.tenantId, updated);
        const sessionsEnded = locked.enabled && !updated.enabled ? await endConnectionSessions(trx, req.ctx!.tenantId, updated.id) : 0;
        // A subject means something only at the IdP that issued it: another IdP's `sub` or
        // NameID could equal it and sign in as the bound user, so the bindings go.
        const bindingsRemoved = idpIdentity(locked) !== idpIdentity(updated) ? await trx('sso_bindings').where({ tenant_id: req.ctx!.tenantId, connection_id: updated.id }).delete() : 0;
        await recordEvent(trx, req.ctx!, {
          event: 'sso_connection.updated',
          entity: entity(updated),
          before: audited(locked),
          after: { ...audited(updated), ...(change.clientSecret !== undefined ? { clientSecretChanged: true } : {}), ...(sessionsEnded ? { sessionsEnded } : {}), ...(bindingsRemoved ? { bindingsRemoved } : {}) },
        });
        return updated;
      });
      res.json(present(c, req.auth!.tenant.slug));
    },
  });

  api.add({
    method: 'delete',
    path: '/sso-connections/{id}',
    operationId: 'deleteSsoConnection',
    summary: 'Remove an SSO connection and end the sessions signed in through it',
    tag: 'SSO',
    responses: { 204: { description: 'Deleted' } },
    handler: async (req, res, { params }) => {
      requireAdmin(req.principal!, 'manage SSO connections');
      await db.tx(async (trx) => {
        await lockMapping(trx, req.ctx!.tenantId, 'exclusive');
        const c = await lockConnection(trx, req.ctx!.tenantId, params.id!, req.ctx!.now.getTime());
        await endConnectionSessions(trx, req.ctx!.tenantId, c.id);
        const claimGroups = await removeClaimGroups(trx, req.ctx!, c.id);
        // Its bindings go with it (foreign key): a connection added later binds anew.
        await deleteConnection(trx, req.ctx!.tenantId, c.id);
        await recordEvent(trx, req.ctx!, { event: 'sso_connection.deleted', entity: entity(c), before: audited(c), after: claimGroups ? { claimGroupsRemoved: claimGroups } : null });
      });
      res.status(204).end();
    },
  });

  const binding = api.schema('SsoBinding', {
    type: 'object',
    required: ['connectionId', 'connectionName', 'subject', 'createdAt'],
    properties: {
      connectionId: common.id,
      connectionName: { type: ['string', 'null'] },
      subject: { type: 'string', description: 'The SAML NameID or OIDC sub the user signs in as' },
      createdAt: common.timestamp,
    },
  });

  api.add({
    method: 'get',
    path: '/users/{id}/sso-bindings',
    operationId: 'listSsoBindings',
    summary: 'The IdP identities a user signs in as, one per connection',
    description: 'Made at the first sign-in through a connection; later sign-ins through it match this identity, never the email.',
    tag: 'SSO',
    responses: { 200: { description: 'The bindings', schema: { type: 'object', required: ['items'], properties: { items: { type: 'array', items: binding } } } } },
    handler: async (req, res, { params }) => {
      requireAdmin(req.principal!, 'read sign-in bindings');
      const user = await requireUser(db.knex, req.ctx!.tenantId, params.id!);
      const names = new Map((await listConnections(db.knex, req.ctx!.tenantId)).map((c) => [c.id, c.name]));
      const items = (await bindingsOf(db.knex, req.ctx!.tenantId, user.id)).map((b) => ({ ...b, connectionName: names.get(b.connectionId) ?? null, createdAt: iso(b.createdAt) }));
      res.json({ items });
    },
  });

  api.add({
    method: 'delete',
    path: '/users/{id}/sso-bindings/{connectionId}',
    operationId: 'deleteSsoBinding',
    summary: "Forget the IdP identity a user signs in as through a connection; their next sign-in there matches by the connection's matchBy again",
    tag: 'SSO',
    responses: { 204: { description: 'Removed' } },
    handler: async (req, res, { params }) => {
      requireAdmin(req.principal!, 'remove sign-in bindings');
      await db.tx(async (trx) => {
        const user = await requireUser(trx, req.ctx!.tenantId, params.id!);
        const removed = await unbind(trx, req.ctx!.tenantId, user.id, params.connectionId!);
        await recordEvent(trx, req.ctx!, {
          event: 'sso.binding_removed',
          entity: { type: 'user', id: user.id, name: user.email ?? user.userName },
          before: { connectionId: removed.connectionId, subject: removed.subject },
          after: null,
        });
      });
      res.status(204).end();
    },
  });
}

/**
 * A deleted connection's claim groups go too (their memberships with them), and the rules are
 * applied again to their members: nothing keeps access that only that IdP asserted.
 */
async function removeClaimGroups(trx: Knex, ctx: Ctx, connectionId: string): Promise<number> {
  const groups = (await trx('idp_groups').where({ tenant_id: ctx.tenantId, connection_id: connectionId }).select('id')).map((r: Record<string, unknown>) => String(r.id));
  if (!groups.length) return 0;
  const users = new Set<string>();
  const rows = await inChunks(trx, groups, (part) => trx('idp_group_members').where({ tenant_id: ctx.tenantId, member_type: 'User' }).whereIn('group_id', part).distinct('member_id'));
  for (const r of rows) users.add(String(r.member_id));
  await trx('idp_groups').where({ tenant_id: ctx.tenantId, connection_id: connectionId }).delete();
  await syncAfterDirectoryChange(trx, ctx, [...users]);
  return groups.length;
}
