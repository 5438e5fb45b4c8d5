import type { AppDeps } from '../http/deps.js';
import { requireUser } from '../directory/users.js';
import { bindingsOf } from '../connections/bindings.js';
import { requireAdmin } from '../access/principal.js';
import {
  ID_TOKEN_ALGS,
  listConnections,
  requireConnection,
  type Connection,
  type ConnectionInput,
} from '../connections/connections.js';
import { certificateInfo } from '../connections/certificates.js';
import { loginUrl, oidcRedirectUri, samlUrls } from '../connections/urls.js';
import {
  createSsoConnection,
  deleteSsoConnection,
  removeSsoBinding,
  updateSsoConnection,
} from '../provisioning/sso-connections.js';
import type { Api } from './api.js';
import type { commonSchemas } from './schemas.js';

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

export function registerSsoConnections(api: Api, deps: AppDeps, common: ReturnType<typeof commonSchemas>): void {
  const { db, config } = deps;
  const nullableName = { type: ['string', 'null'], maxLength: 255 };
  const settable = {
    name: { type: 'string', minLength: 1, maxLength: 200 },
    enabled: { type: 'boolean' },
    matchBy: {
      enum: ['email', 'userName', 'externalId'],
      description:
        'How a first sign-in through this connection finds its user: email (case-insensitive), or the SCIM userName or externalId; later sign-ins match the bound IdP subject',
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
      description:
        'OIDC: count the email claim as verified when the IdP sends no email_verified (Entra ID); default false. An explicit email_verified: false is never trusted',
    },
    issuer: {
      type: 'string',
      maxLength: 1000,
      description: 'OIDC: the issuer URL (discovery at /.well-known/openid-configuration); https, or http on loopback',
    },
    clientId: { type: 'string', minLength: 1, maxLength: 500 },
    clientSecret: {
      type: 'string',
      minLength: 1,
      maxLength: 2000,
      writeOnly: true,
      description: 'OIDC: stored to call the token endpoint; never returned',
    },
    scopes: {
      type: 'array',
      minItems: 1,
      maxItems: 50,
      uniqueItems: true,
      items: { type: 'string', maxLength: 255, pattern: '^[\\x21\\x23-\\x5B\\x5D-\\x7E]+$' },
    },
    groupsClaim: {
      ...nullableName,
      description: 'OIDC: the ID-token claim listing groups (Okta: groups; Entra: groups); null: groups are not synced',
    },
    tokenEndpointAuthMethod: { enum: ['client_secret_basic', 'client_secret_post'] },
    idTokenSigningAlgs: {
      type: 'array',
      minItems: 1,
      uniqueItems: true,
      items: { enum: [...ID_TOKEN_ALGS] },
      description: 'OIDC: accepted ID-token algorithms (default RS256); none and HS* never',
    },
    idpMetadataXml: {
      type: 'string',
      minLength: 1,
      maxLength: 500_000,
      writeOnly: true,
      description: 'SAML: the IdP metadata document; fills idpEntityId, idpSsoUrl and idpCertificates',
    },
    idpEntityId: { type: 'string', minLength: 1, maxLength: 1000 },
    idpSsoUrl: { type: 'string', minLength: 1, maxLength: 2000 },
    idpCertificates: {
      type: 'array',
      minItems: 1,
      maxItems: 10,
      items: { type: 'string', minLength: 1, maxLength: 20_000 },
      description: 'SAML: PEM signing certificates (several during a rollover)',
    },
    nameIdFormat: { type: 'string', minLength: 1, maxLength: 255 },
    attributes: {
      type: 'object',
      additionalProperties: false,
      properties: { email: nullableName, name: nullableName, groups: nullableName },
      description: 'SAML attribute names; email/name null: common names are tried; groups null: groups are not synced',
    },
    allowIdpInitiated: {
      type: 'boolean',
      description: 'SAML: accept responses the IdP sends unasked (off by default)',
    },
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
        items: {
          type: 'object',
          required: ['fingerprintSha256', 'subject', 'notAfter'],
          properties: {
            fingerprintSha256: { type: 'string' },
            subject: { type: 'string' },
            notAfter: common.timestamp,
          },
        },
      },
      nameIdFormat: { type: 'string' },
      attributes: {
        type: 'object',
        properties: {
          email: { type: ['string', 'null'] },
          name: { type: ['string', 'null'] },
          groups: { type: ['string', 'null'] },
        },
      },
      allowIdpInitiated: { type: 'boolean' },
      entityId: { type: 'string', description: 'SAML: the SP entity ID (audience) to give the IdP' },
      acsUrl: { type: 'string', description: 'SAML: the assertion consumer service URL (HTTP-POST)' },
      metadataUrl: { type: 'string', description: 'SAML: the SP metadata' },
    },
  });
  const present = (c: Connection, slug: string) => presentConnection(c, config.publicBaseUrl, slug);

  api.add({
    method: 'get',
    path: '/sso-connections',
    operationId: 'listSsoConnections',
    summary: "The tenant's SAML and OIDC sign-in connections",
    tag: 'SSO',
    responses: {
      200: {
        description: 'Every connection',
        schema: { type: 'object', required: ['items'], properties: { items: { type: 'array', items: connection } } },
      },
    },
    handler: async (req, res) => {
      requireAdmin(req.principal!, 'manage SSO connections');
      res.json({
        items: (await listConnections(db.knex, req.ctx!.tenantId)).map((c) => present(c, req.auth!.tenant.slug)),
      });
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
    body: {
      type: 'object',
      required: ['protocol', 'name'],
      additionalProperties: false,
      properties: { protocol: { enum: ['saml', 'oidc'] }, ...settable },
    },
    responses: { 201: { description: 'Created', schema: connection } },
    handler: async (req, res, { body }) => {
      requireAdmin(req.principal!, 'manage SSO connections');
      const c = await createSsoConnection(db, req.ctx!, body as ConnectionInput);
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
    description:
      'Fields are merged over the current settings; the protocol cannot change. A new clientSecret replaces the stored one.',
    tag: 'SSO',
    body: { type: 'object', additionalProperties: false, minProperties: 1, properties: settable },
    responses: { 200: { description: 'The connection after the change', schema: connection } },
    handler: async (req, res, { params, body }) => {
      requireAdmin(req.principal!, 'manage SSO connections');
      const c = await updateSsoConnection(db, req.ctx!, params.id!, body as Omit<ConnectionInput, 'protocol'>);
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
      await deleteSsoConnection(db, req.ctx!, params.id!);
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
    description:
      'Made at the first sign-in through a connection; later sign-ins through it match this identity, never the email.',
    tag: 'SSO',
    responses: {
      200: {
        description: 'The bindings',
        schema: { type: 'object', required: ['items'], properties: { items: { type: 'array', items: binding } } },
      },
    },
    handler: async (req, res, { params }) => {
      requireAdmin(req.principal!, 'read sign-in bindings');
      const user = await requireUser(db.knex, req.ctx!.tenantId, params.id!);
      const names = new Map((await listConnections(db.knex, req.ctx!.tenantId)).map((c) => [c.id, c.name]));
      const items = (await bindingsOf(db.knex, req.ctx!.tenantId, user.id)).map((b) => ({
        ...b,
        connectionName: names.get(b.connectionId) ?? null,
        createdAt: iso(b.createdAt),
      }));
      res.json({ items });
    },
  });

  api.add({
    method: 'delete',
    path: '/users/{id}/sso-bindings/{connectionId}',
    operationId: 'deleteSsoBinding',
    summary:
      "Forget the IdP identity a user signs in as through a connection; their next sign-in there matches by the connection's matchBy again",
    tag: 'SSO',
    responses: { 204: { description: 'Removed' } },
    handler: async (req, res, { params }) => {
      requireAdmin(req.principal!, 'remove sign-in bindings');
      await removeSsoBinding(db, req.ctx!, params.id!, params.connectionId!);
      res.status(204).end();
    },
  });
}
