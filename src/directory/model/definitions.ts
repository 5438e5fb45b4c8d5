/**
 * RFC 7643 schema definitions for what Roster stores. They are served as-is by /Schemas and drive
 * normalisation, filtering, PATCH and projection, so what /Schemas says is what the server does.
 */

export type AttrType = 'string' | 'boolean' | 'decimal' | 'integer' | 'dateTime' | 'reference' | 'complex' | 'binary';
export type Mutability = 'readOnly' | 'readWrite' | 'immutable' | 'writeOnly';
export type Returned = 'always' | 'never' | 'default' | 'request';

export interface AttributeDef {
  name: string;
  type: AttrType;
  multiValued: boolean;
  description: string;
  required: boolean;
  caseExact: boolean;
  mutability: Mutability;
  returned: Returned;
  uniqueness: 'none' | 'server' | 'global';
  subAttributes?: AttributeDef[];
  canonicalValues?: string[];
  referenceTypes?: string[];
}

export interface SchemaDef {
  id: string;
  name: string;
  description: string;
  attributes: AttributeDef[];
}

export const USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const ENTERPRISE_USER_SCHEMA = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
export const GROUP_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Group';

type Opts = Partial<Omit<AttributeDef, 'name' | 'type' | 'description'>>;

function attr(name: string, type: AttrType, description: string, o: Opts = {}): AttributeDef {
  return {
    name,
    type,
    multiValued: o.multiValued ?? false,
    description,
    required: o.required ?? false,
    caseExact: o.caseExact ?? false,
    mutability: o.mutability ?? 'readWrite',
    returned: o.returned ?? 'default',
    uniqueness: o.uniqueness ?? 'none',
    ...(o.subAttributes ? { subAttributes: o.subAttributes } : {}),
    ...(o.canonicalValues ? { canonicalValues: o.canonicalValues } : {}),
    ...(o.referenceTypes ? { referenceTypes: o.referenceTypes } : {}),
  };
}

const str = (name: string, description: string, o: Opts = {}) => attr(name, 'string', description, o);

/** The value/display/type/primary shape shared by emails, phoneNumbers, ims, photos, roles, … */
function multi(
  name: string,
  description: string,
  types: string[],
  valueType: AttrType = 'string',
  extra: AttributeDef[] = [],
): AttributeDef {
  return attr(name, 'complex', description, {
    multiValued: true,
    subAttributes: [
      attr('value', valueType, `The ${name} value.`, valueType === 'reference' ? { referenceTypes: ['external'] } : {}),
      str('display', 'A human-readable name, primarily used for display purposes.'),
      str('type', `A label indicating the attribute's function.`, types.length ? { canonicalValues: types } : {}),
      attr('primary', 'boolean', 'Indicates the primary or preferred value for this attribute.'),
      ...extra,
    ],
  });
}

export const userSchema: SchemaDef = {
  id: USER_SCHEMA,
  name: 'User',
  description: 'User Account',
  attributes: [
    str(
      'userName',
      'Unique identifier for the User, typically used to sign in. Unique per tenant, compared case-insensitively.',
      {
        required: true,
        uniqueness: 'server',
      },
    ),
    attr('name', 'complex', "The components of the user's real name.", {
      subAttributes: [
        str('formatted', 'The full name, formatted for display.'),
        str('familyName', 'The family name of the User.'),
        str('givenName', 'The given name of the User.'),
        str('middleName', 'The middle name(s) of the User.'),
        str('honorificPrefix', 'The honorific prefix(es) of the User.'),
        str('honorificSuffix', 'The honorific suffix(es) of the User.'),
      ],
    }),
    str('displayName', 'The name of the User, suitable for display to end-users.'),
    str('nickName', 'The casual way to address the user.'),
    attr('profileUrl', 'reference', "A URI that is a uniform resource locator to the user's online profile.", {
      referenceTypes: ['external'],
    }),
    str('title', "The user's title, such as 'Vice President'."),
    str('userType', 'Used to identify the relationship between the organization and the user.'),
    str('preferredLanguage', "The User's preferred written or spoken language."),
    str('locale', "The User's default location for localizing."),
    str('timezone', "The User's time zone in the 'Olson' time zone database format."),
    attr('active', 'boolean', "The User's administrative status; false deactivates (suspends) the user."),
    str('password', 'Write-only: accepted and discarded, never stored or returned (people sign in only through SSO).', {
      mutability: 'writeOnly',
      returned: 'never',
    }),
    multi('emails', 'Email addresses for the user.', ['work', 'home', 'other']),
    multi('phoneNumbers', 'Phone numbers for the User, stored and returned as sent.', [
      'work',
      'home',
      'mobile',
      'fax',
      'pager',
      'other',
    ]),
    multi('ims', 'Instant messaging addresses for the User.', [
      'aim',
      'gtalk',
      'icq',
      'xmpp',
      'msn',
      'skype',
      'qq',
      'yahoo',
    ]),
    multi('photos', 'URLs of photos of the User.', ['photo', 'thumbnail'], 'reference'),
    attr('addresses', 'complex', 'A physical mailing address for this User.', {
      multiValued: true,
      subAttributes: [
        str('formatted', 'The full mailing address, formatted for display.'),
        str('streetAddress', 'The full street address component.'),
        str('locality', 'The city or locality component.'),
        str('region', 'The state or region component.'),
        str('postalCode', 'The zip code or postal code component.'),
        str('country', 'The country name component.'),
        str('type', "A label indicating the attribute's function.", { canonicalValues: ['work', 'home', 'other'] }),
        attr('primary', 'boolean', 'Indicates the primary or preferred address.'),
      ],
    }),
    attr(
      'groups',
      'complex',
      'The groups the user is a direct member of. Read-only: change membership through Groups.',
      {
        multiValued: true,
        mutability: 'readOnly',
        subAttributes: [
          str('value', 'The identifier of the group.', { mutability: 'readOnly', caseExact: true }),
          attr('$ref', 'reference', 'The URI of the corresponding Group resource.', {
            mutability: 'readOnly',
            referenceTypes: ['Group'],
          }),
          str('display', 'A human-readable name of the group.', { mutability: 'readOnly' }),
          str('type', "'direct' or 'indirect'.", { mutability: 'readOnly', canonicalValues: ['direct', 'indirect'] }),
        ],
      },
    ),
    multi(
      'entitlements',
      'Entitlements of the user, kept as directory data only: they never grant access in Roster.',
      [],
    ),
    multi(
      'roles',
      'Roles of the user, kept as directory data only: they never set Roster account roles or permissions.',
      [],
    ),
    multi('x509Certificates', 'A list of certificates issued to the User.', [], 'binary'),
  ],
};

export const enterpriseUserSchema: SchemaDef = {
  id: ENTERPRISE_USER_SCHEMA,
  name: 'EnterpriseUser',
  description: 'Enterprise User',
  attributes: [
    str('employeeNumber', 'Numeric or alphanumeric identifier assigned to a person.'),
    str('costCenter', 'Identifies the name of a cost center.'),
    str('organization', 'Identifies the name of an organization.'),
    str('division', 'Identifies the name of a division.'),
    str('department', 'Identifies the name of a department.'),
    attr(
      'manager',
      'complex',
      "The User's manager. A bare id string is accepted as the manager's value (Entra ID sends one).",
      {
        subAttributes: [
          str('value', 'The id of the SCIM resource representing the manager.', { caseExact: true }),
          attr('$ref', 'reference', 'The URI of the manager resource.', { referenceTypes: ['User'] }),
          str('displayName', 'The displayName of the manager.', { mutability: 'readOnly' }),
        ],
      },
    ),
  ],
};

export const groupSchema: SchemaDef = {
  id: GROUP_SCHEMA,
  name: 'Group',
  description: 'Group',
  attributes: [
    str('displayName', 'A human-readable name for the Group. Unique per tenant, compared case-insensitively.', {
      required: true,
      uniqueness: 'server',
    }),
    attr('members', 'complex', 'A list of members of the Group: users or groups.', {
      multiValued: true,
      subAttributes: [
        str('value', 'Identifier of the member of this Group.', { mutability: 'immutable', caseExact: true }),
        attr('$ref', 'reference', 'The URI of the member resource.', {
          mutability: 'immutable',
          referenceTypes: ['User', 'Group'],
        }),
        str('display', 'A human-readable name of the member.', { mutability: 'readOnly' }),
        str('type', 'The type of the member.', { mutability: 'immutable', canonicalValues: ['User', 'Group'] }),
      ],
    }),
  ],
};

/** Attributes every resource has (RFC 7643 §3.1), described for filtering and projection. */
export const commonAttributes: AttributeDef[] = [
  str('id', 'Unique identifier of the resource, assigned by Roster.', {
    caseExact: true,
    mutability: 'readOnly',
    returned: 'always',
    uniqueness: 'server',
  }),
  str('externalId', 'An identifier for the resource as defined by the provisioning client (case-exact).', {
    caseExact: true,
  }),
  attr('meta', 'complex', 'Resource metadata.', {
    mutability: 'readOnly',
    subAttributes: [
      str('resourceType', 'The name of the resource type.', { caseExact: true, mutability: 'readOnly' }),
      attr('created', 'dateTime', 'When the resource was added.', { mutability: 'readOnly' }),
      attr('lastModified', 'dateTime', 'When the resource was last modified.', { mutability: 'readOnly' }),
      attr('location', 'reference', 'The URI of the resource.', { mutability: 'readOnly', referenceTypes: ['uri'] }),
      str('version', 'The version (weak ETag) of the resource.', { caseExact: true, mutability: 'readOnly' }),
    ],
  }),
];

export const allSchemas: SchemaDef[] = [userSchema, enterpriseUserSchema, groupSchema];
