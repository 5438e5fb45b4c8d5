import assert from 'node:assert/strict';
import type { Knex } from 'knex';
import { parseFilter } from '../../../src/scim/filter/parser.js';
import { filterToSql, sortToSql } from '../../../src/scim/filter/to-sql.js';
import {
  containerKey,
  GROUP_RT,
  resolvePath,
  USER_RT,
  type ResourceType,
} from '../../../src/directory/model/registry.js';
import { caseMappedKey, valueKey } from '../../../src/directory/model/value-key.js';
import { dialectName, testDb } from '../../support/db.js';
import { buildTenant } from '../../support/factories.js';

const ms = (iso: string) => Date.parse(iso);

/** `[path, ord, value]` triples of a user's filter index, e.g. `['emails.type', 1, 'home']`. */
type AttrSpec = [path: string, ord: number, value: unknown][];

interface UserSpec {
  id: string;
  userName: string;
  externalId?: string;
  active?: boolean;
  created: string;
  updated: string;
  attrs?: AttrSpec;
}

/** A user_attrs row as the directory index keeps it: storage name, sub-attribute, element, valueKey. */
function attrRow(tenantId: string, userId: string, [path, ord, value]: AttrSpec[number]) {
  const p = resolvePath(USER_RT, path);
  if (!p) throw new Error(`test data names an unknown attribute ${path}`);
  const container = containerKey(p, USER_RT);
  return {
    tenant_id: tenantId,
    user_id: userId,
    attr: container ? `${container}:${p.attr.name}` : p.attr.name,
    sub: p.sub?.name ?? '',
    ord,
    value_key: valueKey(p.sub ?? p.attr, value),
  };
}

async function insertUsers(knex: Knex, tenantId: string, users: UserSpec[]): Promise<void> {
  await knex('users').insert(
    users.map((u) => ({
      tenant_id: tenantId,
      id: u.id,
      user_name: u.userName,
      user_name_key: caseMappedKey(u.userName),
      external_id: u.externalId ?? null,
      active: u.active ?? true,
      status: u.active === false ? 'suspended' : 'active',
      source: 'scim',
      scim_doc: '{}',
      created_at: ms(u.created),
      updated_at: ms(u.updated),
    })),
  );
  const rows = users.flatMap((u) => (u.attrs ?? []).map((a) => attrRow(tenantId, u.id, a)));
  if (rows.length) await knex('user_attrs').insert(rows);
}

interface GroupSpec {
  id: string;
  displayName: string;
  source?: 'scim' | 'claims';
  externalId?: string;
  members?: [id: string, type: 'User' | 'Group'][];
}

async function insertGroups(knex: Knex, tenantId: string, groups: GroupSpec[]): Promise<void> {
  const now = ms('2022-01-01T00:00:00Z');
  await knex('idp_groups').insert(
    groups.map((g) => ({
      tenant_id: tenantId,
      id: g.id,
      source: g.source ?? 'scim',
      display_name: g.displayName,
      display_name_key: caseMappedKey(g.displayName),
      external_id: g.externalId ?? null,
      scim_doc: '{}',
      created_at: now,
      updated_at: now,
    })),
  );
  const members = groups.flatMap((g) =>
    (g.members ?? []).map(([member, type]) => ({
      tenant_id: tenantId,
      group_id: g.id,
      member_id: member,
      member_type: type,
      created_at: now,
    })),
  );
  if (members.length) await knex('idp_group_members').insert(members);
}

const USERS: UserSpec[] = [
  {
    id: 'bob',
    userName: 'Bob',
    externalId: 'EXT-bob',
    created: '2020-01-01T00:00:00Z',
    updated: '2021-06-01T00:00:00Z',
    attrs: [
      ['name.familyName', 0, 'Jensen'],
      ['name.givenName', 0, 'Bob'],
      ['displayName', 0, 'Bob Jensen'],
      ['title', 0, 'Engineer 50%'],
      ['emails.value', 0, 'a@x.com'],
      ['emails.type', 0, 'work'],
      ['emails.primary', 0, true],
      ['emails.value', 1, 'b@y.com'],
      ['emails.type', 1, 'home'],
      ['urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department', 0, 'Sales'],
      ['urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value', 0, 'Mgr-1'],
    ],
  },
  {
    id: 'rene',
    userName: 'rené',
    externalId: 'EXT-rene',
    active: false,
    created: '2019-06-01T00:00:00Z',
    updated: '2020-06-01T00:00:00Z',
    attrs: [
      ['displayName', 0, 'René'],
      ['title', 0, 'a_b'],
      ['emails.value', 0, 'rene@x.com'],
      ['emails.type', 0, 'work'],
    ],
  },
  {
    id: 'rene2',
    userName: 'rene',
    created: '2021-01-01T00:00:00Z',
    updated: '2021-01-01T00:00:00Z',
    attrs: [
      ['title', 0, 'Engineer 500'],
      ['emails.value', 0, 'z@z.com'],
      ['emails.value', 1, 'c@c.com'],
      ['emails.primary', 1, true],
    ],
  },
  {
    id: 'zoe',
    // Decomposed: é as e + U+0301; its key is NFC.
    userName: 'Zoe\u0301',
    created: '2022-01-01T00:00:00Z',
    updated: '2022-01-01T00:00:00Z',
    attrs: [
      ['displayName', 0, 'Zoé!'],
      ['title', 0, 'axb'],
      ['emails.value', 0, 'y@q.com'],
      ['emails.value', 1, 'b@b.com'],
    ],
  },
  { id: 'nora', userName: 'Nora', created: '2023-01-01T00:00:00Z', updated: '2023-01-01T00:00:00Z' },
];

const GROUPS: GroupSpec[] = [
  {
    id: 'g-eng',
    displayName: 'Engineering',
    externalId: 'EXT-ENG',
    members: [
      ['bob', 'User'],
      ['rene', 'User'],
      ['g-ops', 'Group'],
    ],
  },
  { id: 'g-ops', displayName: 'Ops', members: [['rene2', 'User']] },
  { id: 'g-empty', displayName: 'Empty' },
  // Seen in sign-in claims: not a SCIM group, so not in a user's `groups`.
  { id: 'g-claims', displayName: 'Claimed', source: 'claims', members: [['nora', 'User']] },
];

/** Tenant B reuses ids on purpose: a subquery that forgot the tenant would cross over. */
const OTHER_USERS: UserSpec[] = [
  {
    id: 'bob',
    userName: 'Bob',
    externalId: 'EXT-bob',
    created: '2020-01-01T00:00:00Z',
    updated: '2020-01-01T00:00:00Z',
    attrs: [
      ['title', 0, 'Only in B'],
      ['emails.value', 0, 'b@y.com'],
      ['emails.type', 0, 'work'],
    ],
  },
  { id: 'nora', userName: 'Nora', created: '2020-01-01T00:00:00Z', updated: '2020-01-01T00:00:00Z' },
  { id: 'other', userName: 'Other', created: '2020-01-01T00:00:00Z', updated: '2020-01-01T00:00:00Z' },
];
const OTHER_GROUPS: GroupSpec[] = [{ id: 'g-eng', displayName: 'Engineering', members: [['nora', 'User']] }];

describe(`SCIM filters as SQL (${dialectName})`, () => {
  let knex: Knex;
  let a: string;
  let b: string;

  before(async () => {
    knex = (await testDb()).knex;
    a = (await buildTenant()).tenant.id;
    b = (await buildTenant()).tenant.id;
    await insertUsers(knex, a, USERS);
    await insertGroups(knex, a, GROUPS);
    await insertUsers(knex, b, OTHER_USERS);
    await insertGroups(knex, b, OTHER_GROUPS);
  });

  async function select(rt: ResourceType, filter: string, tenantId = a): Promise<string[]> {
    const { sql, bindings } = filterToSql(parseFilter(filter, rt), rt);
    const q = knex(rt === USER_RT ? 'users as r' : 'idp_groups as r').where('r.tenant_id', tenantId);
    if (rt === GROUP_RT) q.andWhere('r.source', 'scim');
    const ids = await q.whereRaw(sql, bindings).orderBy('r.id').pluck('r.id');
    return ids.map(String);
  }

  function expectUsers(filter: string, ids: string[], tenant?: () => string) {
    it(`${filter} → [${ids.join(', ')}]${tenant ? ' in tenant B' : ''}`, async () => {
      assert.deepEqual(await select(USER_RT, filter, tenant?.()), [...ids].sort());
    });
  }

  function expectGroups(filter: string, ids: string[], tenant?: () => string) {
    it(`${filter} → [${ids.join(', ')}]${tenant ? ' in tenant B' : ''}`, async () => {
      assert.deepEqual(await select(GROUP_RT, filter, tenant?.()), [...ids].sort());
    });
  }

  describe('userName: case-insensitive, width-mapped, normalised, accents kept', () => {
    expectUsers('userName eq "test.user@okta.local"', []);
    expectUsers('userName eq "bob"', ['bob']);
    expectUsers('UserName EQ "BOB"', ['bob']);
    expectUsers('userName eq "ＢＯＢ"', ['bob']);
    expectUsers('userName eq "rené"', ['rene']);
    expectUsers('userName eq "RENÉ"', ['rene']);
    expectUsers('userName eq "rene\u0301"', ['rene']);
    expectUsers('userName eq "rene"', ['rene2']);
    expectUsers('userName eq "zoé"', ['zoe']);
    expectUsers('userName eq "ZOE\u0301"', ['zoe']);
    expectUsers('userName sw "REN"', ['rene', 'rene2']);
    expectUsers('userName sw O', []);
    expectUsers('userName gt "r"', ['rene', 'rene2', 'zoe']);
    expectUsers('userName le "nora"', ['bob', 'nora']);
  });

  describe('externalId and id: exact', () => {
    expectUsers('externalId eq "EXT-bob"', ['bob']);
    expectUsers('externalId eq EXT-bob', ['bob']);
    expectUsers('externalId eq "ext-bob"', []);
    expectUsers('externalId pr', ['bob', 'rene']);
    expectUsers('externalId ne "EXT-bob"', ['nora', 'rene', 'rene2', 'zoe']);
    expectUsers('not (externalId eq "EXT-bob")', ['nora', 'rene', 'rene2', 'zoe']);
    expectUsers('id eq "rene2" or id eq "zoe"', ['rene2', 'zoe']);
    expectUsers('id eq "BOB"', []);
  });

  describe('LIKE wildcards in values are literal', () => {
    expectUsers('title co "50%"', ['bob']);
    expectUsers('title co "r 5"', ['bob', 'rene2']);
    expectUsers('title co "a_b"', ['rene']);
    expectUsers('title sw "A_"', ['rene']);
    expectUsers('displayName co "!"', ['zoe']);
    expectUsers('displayName ew "É!"', ['zoe']);
  });

  describe('attributes in the filter index', () => {
    expectUsers('name.familyName eq "JENSEN"', ['bob']);
    expectUsers('name.FamilyName eq Jensen and (emails.Value co x.com or emails.Value co example.org)', ['bob']);
    expectUsers('displayName eq "rené"', ['rene']);
    expectUsers('displayName eq "rene"', []);
    expectUsers('urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "sales"', ['bob']);
    expectUsers('urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "Mgr-1"', ['bob']);
    expectUsers('urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "mgr-1"', []);
    expectUsers('title pr', ['bob', 'rene', 'rene2', 'zoe']);
    expectUsers('name pr', ['bob']);
    expectUsers('title ne "Engineer 50%"', ['nora', 'rene', 'rene2', 'zoe']);
    expectUsers('title eq null', ['nora']);
    expectUsers('title gt "b"', ['bob', 'rene2']);
  });

  describe('multi-valued attributes: any element, and one element for a value path', () => {
    expectUsers('emails eq "A@X.COM"', ['bob']);
    expectUsers('emails.value co "y.com"', ['bob']);
    expectUsers('emails[type eq "work" and value co "y.com"]', []);
    expectUsers('emails[type eq "home" and value co "y.com"]', ['bob']);
    expectUsers('emails[type eq "work"].value eq "a@x.com"', ['bob']);
    expectUsers('emails[type eq "work"].value eq "b@y.com"', []);
    expectUsers('emails[type eq "work"]', ['bob', 'rene']);
    expectUsers('emails[not (type eq "work")]', ['bob', 'rene2', 'zoe']);
    expectUsers('emails[type ne "work" and value co "@"]', ['bob', 'rene2', 'zoe']);
    expectUsers('emails[primary eq true and value sw "c@"]', ['rene2']);
    expectUsers('emails[primary eq "True" and value sw "z@"]', []);
    expectUsers('emails[primary eq "True"].value pr', ['bob', 'rene2']);
    expectUsers('not (emails pr)', ['nora']);
    expectUsers('emails.type eq "work" and not (emails.type eq "home")', ['rene']);
  });

  describe('active and meta', () => {
    expectUsers('active eq false', ['rene']);
    expectUsers('active eq "False"', ['rene']);
    expectUsers('active eq "True"', ['bob', 'nora', 'rene2', 'zoe']);
    expectUsers('active ne true', ['rene']);
    expectUsers('meta.created eq 2019-12-31T16:00:00.0000000-08:00', ['bob']);
    expectUsers('meta.created gt 2019-12-31T16:00:00.0000000-08:00', ['nora', 'rene2', 'zoe']);
    expectUsers('meta.created ge "2020-01-01T00:00:00Z"', ['bob', 'nora', 'rene2', 'zoe']);
    expectUsers('meta.Created lt 2015-10-10T14:38:21.8617979-07:00', []);
    expectUsers('meta.lastModified le 2021-01-01', ['rene', 'rene2']);
    expectUsers('meta.resourceType eq "User"', ['bob', 'nora', 'rene', 'rene2', 'zoe']);
    expectUsers('meta.resourceType eq "Group"', []);
  });

  describe("a user's groups: direct SCIM groups only", () => {
    expectUsers('groups eq "g-eng"', ['bob', 'rene']);
    expectUsers('groups.value eq "g-ops"', ['rene2']);
    expectUsers('groups.display eq "ENGINEERING"', ['bob', 'rene']);
    expectUsers('groups.display eq "claimed"', []);
    expectUsers('groups[value eq "g-eng" and display eq "ops"]', []);
    expectUsers('groups pr', ['bob', 'rene', 'rene2']);
    expectUsers('not (groups pr)', ['nora', 'zoe']);
  });

  describe('groups', () => {
    expectGroups('displayName eq "engineering"', ['g-eng']);
    expectGroups('DisplayName co "E"', ['g-empty', 'g-eng']);
    expectGroups('displayName eq "Claimed"', []);
    expectGroups('externalId eq "EXT-ENG"', ['g-eng']);
    expectGroups('externalId eq "ext-eng"', []);
    expectGroups('members eq "bob"', ['g-eng']);
    expectGroups('members.value eq "rene2"', ['g-ops']);
    expectGroups('members.type eq "GROUP"', ['g-eng']);
    expectGroups('members[value eq "g-ops" and type eq "Group"]', ['g-eng']);
    expectGroups('members[value eq "bob" and type eq "Group"]', []);
    expectGroups('members[type eq "user" and not (value eq "bob")]', ['g-eng', 'g-ops']);
    expectGroups('not (members pr)', ['g-empty']);
    expectGroups('meta.resourceType eq "Group" and id eq "g-ops"', ['g-ops']);
    expectGroups('meta.created eq "2022-01-01T00:00:00Z"', ['g-empty', 'g-eng', 'g-ops']);
  });

  describe('tenant isolation', () => {
    expectUsers('title eq "Only in B"', []);
    expectUsers('title eq "Only in B"', ['bob'], () => b);
    expectUsers('userName eq "other"', []);
    expectUsers('emails[type eq "work" and value eq "b@y.com"]', ['bob'], () => b);
    expectUsers('groups eq "g-eng"', ['nora'], () => b);
    expectUsers('groups eq "g-eng"', ['bob', 'rene']);
    expectGroups('members eq "nora"', []);
    expectGroups('members eq "nora"', ['g-eng'], () => b);
  });

  describe('injection attempts select nothing', () => {
    expectUsers(`userName eq "x' OR 1=1 --"`, []);
    expectUsers(`userName eq "x\\" OR 1=1 --"`, []);
    expectUsers(`title co "') OR ('1'='1"`, []);
    expectUsers(`emails[value eq "x' OR 'a'='a"]`, []);
  });

  describe('sortBy', () => {
    async function sorted(
      sortBy: string,
      order: 'ascending' | 'descending',
      rt: ResourceType = USER_RT,
    ): Promise<string[]> {
      const { sql, bindings } = sortToSql(sortBy, rt, order);
      const q = knex(rt === USER_RT ? 'users as r' : 'idp_groups as r').where('r.tenant_id', a);
      if (rt === GROUP_RT) q.andWhere('r.source', 'scim');
      return (await q.orderByRaw(`${sql}, r.id`, bindings).pluck('r.id')).map(String);
    }

    it('sorts userName case-insensitively', async () => {
      assert.deepEqual(await sorted('userName', 'ascending'), ['bob', 'nora', 'rene2', 'rene', 'zoe']);
      assert.deepEqual(await sorted('USERNAME', 'descending'), ['zoe', 'rene', 'rene2', 'nora', 'bob']);
    });

    it('puts users without the attribute last when ascending, first when descending', async () => {
      assert.deepEqual(await sorted('title', 'ascending'), ['rene', 'zoe', 'bob', 'rene2', 'nora']);
      assert.deepEqual(await sorted('title', 'descending'), ['nora', 'rene2', 'bob', 'zoe', 'rene']);
      assert.deepEqual(await sorted('externalId', 'ascending'), ['bob', 'rene', 'nora', 'rene2', 'zoe']);
    });

    it('sorts a multi-valued attribute by the primary value, else the first', async () => {
      // bob: a@x.com (primary); rene2: c@c.com (primary, second); rene: rene@x.com; zoe: y@q.com (first).
      assert.deepEqual(await sorted('emails', 'ascending'), ['bob', 'rene2', 'rene', 'zoe', 'nora']);
      assert.deepEqual(await sorted('emails.value', 'descending'), ['nora', 'zoe', 'rene', 'rene2', 'bob']);
    });

    it('sorts dates and groups', async () => {
      assert.deepEqual(await sorted('meta.created', 'descending'), ['nora', 'zoe', 'rene2', 'bob', 'rene']);
      assert.deepEqual(await sorted('displayName', 'ascending', GROUP_RT), ['g-empty', 'g-eng', 'g-ops']);
    });
  });
});
