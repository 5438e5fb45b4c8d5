import type { Config } from '../config/load.js';

export const SPC_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig';

/** RFC 7643 §5: says exactly what this server supports. */
export function serviceProviderConfig(config: Config) {
  return {
    schemas: [SPC_SCHEMA],
    documentationUri: `${config.publicBaseUrl}/docs/scim`,
    patch: { supported: false },
    bulk: { supported: false, maxOperations: 0, maxPayloadSize: 0 },
    filter: { supported: false, maxResults: 0 },
    changePassword: { supported: false },
    sort: { supported: false },
    etag: { supported: false },
    authenticationSchemes: [
      {
        type: 'oauthbearertoken',
        name: 'OAuth Bearer Token',
        description: 'Authentication with a Roster SCIM token (roster_scim_…) in Authorization: Bearer',
        primary: true,
      },
    ],
    meta: { resourceType: 'ServiceProviderConfig', location: `${config.publicBaseUrl}/scim/v2/ServiceProviderConfig` },
  };
}
