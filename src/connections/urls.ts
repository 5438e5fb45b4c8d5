// Where a connection is reached: the sso/ edge serves these addresses, the management API shows
// them to the admin who configures the IdP.

export interface SamlUrls {
  /** The SP entityID, which IdPs use as the audience; also where the metadata is served. */
  entityId: string;
  acsUrl: string;
  metadataUrl: string;
}

/** One SP per connection, so two IdPs of a tenant (or two tenants on one IdP) never share an audience. */
export function samlUrls(publicBaseUrl: string, tenantSlug: string, connectionId: string): SamlUrls {
  const root = `${publicBaseUrl}/auth/${encodeURIComponent(tenantSlug)}/saml/${encodeURIComponent(connectionId)}`;
  return { entityId: `${root}/metadata`, acsUrl: `${root}/acs`, metadataUrl: `${root}/metadata` };
}

export function loginUrl(publicBaseUrl: string, tenantSlug: string, connectionId: string): string {
  return `${publicBaseUrl}/auth/${encodeURIComponent(tenantSlug)}/${encodeURIComponent(connectionId)}/login`;
}

export function oidcRedirectUri(publicBaseUrl: string, tenantSlug: string, connectionId: string): string {
  return `${publicBaseUrl}/auth/${encodeURIComponent(tenantSlug)}/oidc/${encodeURIComponent(connectionId)}/callback`;
}
