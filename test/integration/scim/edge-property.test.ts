import assert from 'node:assert/strict';
import { buildTenant } from '../../support/factories.js';
import { useApp } from '../../support/harness.js';
import { ENTERPRISE, GROUP, patchBody, scimClient, USER } from '../../support/scim.js';
import { prng } from '../../support/prng.js';

type Rnd = ReturnType<typeof prng>;

/** Every attribute of a User, as a PATCH path and as a body key, plus paths IdPs really send. */
const USER_PATHS = [
  'userName',
  'name',
  'name.givenName',
  'name.familyName',
  'displayName',
  'nickName',
  'profileUrl',
  'title',
  'userType',
  'preferredLanguage',
  'locale',
  'timezone',
  'active',
  'password',
  'emails',
  'phoneNumbers',
  'ims',
  'photos',
  'addresses',
  'groups',
  'entitlements',
  'roles',
  'x509Certificates',
  'externalId',
  'id',
  'meta',
  `${ENTERPRISE}:employeeNumber`,
  `${ENTERPRISE}:costCenter`,
  `${ENTERPRISE}:department`,
  `${ENTERPRISE}:manager`,
  ENTERPRISE,
  'emails[type eq "work"].value',
  'emails[type eq "work"]',
  'emails.value',
  'phoneNumbers[type eq "mobile"].value',
  'addresses[type eq "work"].locality',
  'manager',
  'manager[value eq "x"]',
  `${ENTERPRISE}:manager.value`,
  'name.nope',
  'nope',
] as const;

const GROUP_PATHS = [
  'displayName',
  'externalId',
  'members',
  'members[value eq "x"]',
  'members.value',
  'id',
  'meta',
  GROUP,
  'nope',
] as const;

const SUB_KEYS = [
  'value',
  'type',
  'primary',
  'display',
  'givenName',
  'familyName',
  'locality',
  'formatted',
  '$ref',
  'Value',
  'manager',
  'x',
];

/** Strings that have broken servers: long, case-mapping growth, astral and lone surrogates, control characters, IdP spellings. */
function randomString(r: Rnd, ids: string[]): string {
  switch (r.int(12)) {
    case 0:
      return '';
    case 1:
      return 'x'.repeat(r.pick([254, 255, 256, 320, 321, 1024, 1025, 2049, 5000]));
    case 2:
      return 'İ'.repeat(r.pick([127, 128, 200, 255]));
    case 3:
      return '😀'.repeat(r.pick([1, 200, 255, 256]));
    case 4:
      return r.pick(['\ud800', 'a\udfffb', '\u0000', ' lead', 'trail ', 'a\u200bb', '\t']);
    case 5:
      return r.pick(['True', 'False', 'true', 'maybe', '1', '2026-12-02T01:00:00Z', 'not a date']);
    case 6:
      return ids.length ? r.pick(ids) : 'missing-id';
    case 7:
      return r.pick(['work', 'home', 'User', 'Group', 'mobile']);
    default:
      return `${r.pick(['a', 'Ä', 'ß', 'ǅ', 'ﬃ', 'ｗ'])}${r.int(1e6)}@example.com`;
  }
}

/** Random JSON of the wrong types, sizes and nesting. */
function randomJson(r: Rnd, ids: string[], depth = 0): unknown {
  const leaf = depth >= 4;
  switch (r.int(leaf ? 5 : 8)) {
    case 0:
      return null;
    case 1:
      return r.next() < 0.5;
    case 2:
      return r.pick([0, -1, 12345, 1.5, 1e308, -0, 2 ** 53 + 1]);
    case 3:
    case 4:
      return randomString(r, ids);
    case 5:
    case 6: {
      const obj: Record<string, unknown> = {};
      for (let i = r.int(4); i > 0; i--) obj[r.pick(SUB_KEYS)] = randomJson(r, ids, depth + 1);
      return obj;
    }
    default: {
      const n = r.pick([0, 1, 2, 3, 99, 100, 101, 150]);
      const item = () =>
        r.next() < 0.7
          ? { value: randomString(r, ids), type: r.pick(['work', 'home', 7]) }
          : randomJson(r, ids, depth + 1);
      return Array.from({ length: n }, item);
    }
  }
}

const STRINGS = new Set([
  'userName',
  'name.givenName',
  'name.familyName',
  'displayName',
  'nickName',
  'title',
  'locale',
  'externalId',
  `${ENTERPRISE}:department`,
]);
const LISTS = new Set([
  'emails',
  'phoneNumbers',
  'ims',
  'photos',
  'addresses',
  'entitlements',
  'roles',
  'x509Certificates',
]);
const KEYS = new Set(['userName', 'externalId']);

/** Values a server must refuse wherever they are written, whatever the database would store. */
function mustRefuse(path: string, value: unknown): boolean {
  if (STRINGS.has(path) && (typeof value === 'number' || typeof value === 'boolean')) return true;
  if (
    LISTS.has(path) &&
    (typeof value === 'number' || typeof value === 'boolean' || (typeof value === 'string' && value !== ''))
  )
    return true;
  if (LISTS.has(path) && Array.isArray(value) && value.length > 100) return true;
  return KEYS.has(path) && typeof value === 'string' && [...value.toLowerCase()].length > 255;
}

const SEEDS = process.env.PROPERTY_SEED ? [Number(process.env.PROPERTY_SEED)] : [11, 12, 13];

describe('SCIM edge, property-style', () => {
  const app = useApp();

  for (const seed of SEEDS)
    it(`random values at every attribute never answer 5xx, and a 4xx changes nothing (seed ${seed})`, async function () {
      this.timeout(120000);
      const steps = Number(process.env.PROPERTY_STEPS ?? 120);
      const r = prng(seed);
      const scim = scimClient(app, (await buildTenant()).scimToken);
      const users: string[] = [];
      const groups: string[] = [];
      const baseUser = () => ({
        schemas: [USER, ENTERPRISE],
        userName: `u${r.int(1e9)}@example.com`,
        name: { givenName: 'A', familyName: 'B' },
        emails: [{ value: 'a@example.com', type: 'work', primary: true }],
      });
      const baseGroup = () => ({ schemas: [GROUP], displayName: `g${r.int(1e9)}` });
      users.push((await scim.post('/Users', baseUser()).expect(201)).body.id);
      groups.push((await scim.post('/Groups', baseGroup()).expect(201)).body.id);
      const counts: Record<string, number> = {};

      for (let step = 0; step < steps; step++) {
        const onUsers = r.next() < 0.7;
        const kind = r.pick(['POST', 'PUT', 'PATCH', 'PATCH'] as const);
        const paths: readonly string[] = onUsers ? USER_PATHS : GROUP_PATHS;
        const path = r.pick(paths);
        const ids = [...users, ...groups];
        const value = randomJson(r, ids);
        const collection = onUsers ? '/Users' : '/Groups';
        const id = r.pick(onUsers ? users : groups);
        let target: string;
        let send: () => ReturnType<typeof scim.post>;
        // A resource body takes attribute names, not dotted paths: `name.givenName` there is unknown, hence ignored.
        let refuse = mustRefuse(path, value) && (kind === 'PATCH' || !path.startsWith('name.'));
        if (kind === 'POST') {
          target = collection;
          const body = { ...(onUsers ? baseUser() : baseGroup()), [path]: value };
          send = () => scim.post(collection, body);
        } else if (kind === 'PUT') {
          target = `${collection}/${id}`;
          const body = { ...(onUsers ? baseUser() : baseGroup()), [path]: value };
          send = () => scim.put(target, body);
        } else {
          target = `${collection}/${id}`;
          const op = r.pick(['add', 'replace', 'remove', 'Replace']);
          const form = r.int(10);
          // Sometimes the value is nested deeper than any attribute allows.
          const sent = form === 0 ? randomJson(r, ids, 3) : value;
          const operation = form < 3 ? { op, value: { [path]: sent } } : { op, path, value: sent };
          // A remove ignores its value.
          refuse &&= op !== 'remove' && sent === value;
          send = () => scim.patch(target, patchBody(operation));
        }
        const before = (await scim.get(target).expect(200)).body;
        const res = await send();
        const what = `seed ${seed}, step ${step}: ${kind} ${collection} ${path} = ${JSON.stringify(value)?.slice(0, 300)}`;
        counts[`${Math.floor(res.status / 100)}xx`] = (counts[`${Math.floor(res.status / 100)}xx`] ?? 0) + 1;
        assert.ok(res.status < 500, `${what} → ${res.status} ${JSON.stringify(res.body)}`);
        if (refuse && onUsers) assert.ok(res.status >= 400, `${what} was accepted: ${res.status}`);
        if (res.status >= 400) {
          assert.ok(res.body.detail, `${what}: a 4xx names the problem`);
          assert.deepEqual(
            (await scim.get(target).expect(200)).body,
            before,
            `${what} → ${res.status} changed the resource`,
          );
        } else if (kind === 'POST') (onUsers ? users : groups).push(res.body.id);
      }
      console.log(`      seed ${seed}: ${JSON.stringify(counts)}`);
    });
});
