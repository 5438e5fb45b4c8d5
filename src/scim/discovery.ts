import type { Config } from '../config/load.js';
import { MAX_BULK_OPERATIONS } from './bulk.js';
import { MAX_COUNT } from './list-params.js';
import { allSchemas, type SchemaDef } from '../directory/model/definitions.js';
import { RESOURCE_TYPES, type ResourceType } from '../directory/model/registry.js';

export const SPC_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig';

/** RFC 7643 §5: says exactly what this server supports. */
export function serviceProviderConfig(config: Config) {
  return {
    schemas: [SPC_SCHEMA],
    documentationUri: `${config.publicBaseUrl}/docs/scim`,
    patch: { supported: true },
    bulk: { supported: true, maxOperations: MAX_BULK_OPERATIONS, maxPayloadSize: config.bodyLimitBytes },
    filter: { supported: true, maxResults: MAX_COUNT },
    changePassword: { supported: false },
    sort: { supported: true },
    etag: { supported: true },
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

export const RESOURCE_TYPE_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:ResourceType';
export const SCHEMA_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Schema';

export function resourceTypeDoc(rt: ResourceType, base: string) {
  return {
    schemas: [RESOURCE_TYPE_SCHEMA],
    id: rt.name,
    name: rt.name,
    endpoint: rt.endpoint,
    description: rt.name === 'User' ? 'User Account' : 'Group',
    schema: rt.schema.id,
    schemaExtensions: rt.extensions.map((e) => ({ schema: e.id, required: false })),
    meta: { resourceType: 'ResourceType', location: `${base}/scim/v2/ResourceTypes/${rt.name}` },
  };
}

export function schemaDoc(s: SchemaDef, base: string) {
  return {
    schemas: [SCHEMA_SCHEMA],
    ...s,
    meta: { resourceType: 'Schema', location: `${base}/scim/v2/Schemas/${s.id}` },
  };
}

export function findResourceType(name: string): ResourceType | undefined {
  return RESOURCE_TYPES.find((rt) => rt.name.toLowerCase() === name.toLowerCase());
}

export function findSchema(id: string): SchemaDef | undefined {
  return allSchemas.find((s) => s.id.toLowerCase() === id.toLowerCase());
}
