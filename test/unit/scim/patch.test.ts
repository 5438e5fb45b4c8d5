import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { InvalidInput, type ScimType } from '../../../src/errors.js';
import { applyPatchToDoc } from '../../../src/scim/patch/apply-user.js';
import type { MemberStep } from '../../../src/directory/groups.js';
import { planGroupPatch } from '../../../src/scim/patch/group.js';
import { MAX_PATCH_OPERATIONS, PATCH_OP_SCHEMA, parsePatchOps } from '../../../src/scim/patch/parse.js';
import type { ScimDoc } from '../../../src/directory/model/normalize.js';
import { GROUP_RT, USER_RT } from '../../../src/directory/model/registry.js';

const ENTERPRISE = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
const MANAGER = `${ENTERPRISE}:manager`;
const USER_ID = '2819c223-7f76-453a-919d-413861904646';
const GROUP_ID = 'abf4dd94-a4c0-4f67-89c9-76b03340cb9b';

interface Fixture {
  $comment: string;
  title: string;
  resourceType: 'User' | 'Group';
  current: { id: string; doc: ScimDoc };
  request: unknown;
  expect: { doc: ScimDoc; memberSteps?: MemberStep[] };
}

/** Only `patch-*.json`: the same folders hold other suites' Okta and Entra fixtures. */
function fixtures(idp: 'okta' | 'entra'): [string, Fixture][] {
  const dir = new URL(`../../fixtures/scim/${idp}/`, import.meta.url);
  return readdirSync(dir)
    .filter((f) => f.startsWith('patch-') && f.endsWith('.json'))
    .sort()
    .map((f) => [`${idp}/${f}`, JSON.parse(readFileSync(new URL(f, dir), 'utf8')) as Fixture]);
}

const add = (path: string, value: unknown) => ({ op: 'add', path, value });
const replace = (path: string, value: unknown) => ({ op: 'replace', path, value });
const remove = (path: string, value?: unknown) =>
  value === undefined ? { op: 'remove', path } : { op: 'remove', path, value };

function message(...ops: unknown[]): unknown {
  return { schemas: [PATCH_OP_SCHEMA], Operations: ops };
}

function parseUser(...ops: unknown[]) {
  return parsePatchOps(message(...ops), USER_RT);
}

function patchUser(doc: ScimDoc, ...ops: unknown[]): ScimDoc {
  return applyPatchToDoc(doc, parseUser(...ops), USER_RT, { id: USER_ID });
}

function planGroup(doc: ScimDoc, ...ops: unknown[]) {
  return planGroupPatch(parsePatchOps(message(...ops), GROUP_RT), { id: GROUP_ID, doc });
}

/** Asserts an InvalidInput with this scimType whose message matches (IdP admins read it). */
function rejects(run: () => unknown, scimType: ScimType, detail: RegExp): void {
  assert.throws(run, (e: unknown) => {
    assert.ok(e instanceof InvalidInput, `expected InvalidInput, got ${String(e)}`);
    assert.equal(e.extra.scimType, scimType, e.message);
    assert.match(e.message, detail);
    return true;
  });
}

const alice: ScimDoc = {
  userName: 'alice@example.com',
  name: { givenName: 'Alice', familyName: 'Liddell' },
  emails: [
    { value: 'alice@example.com', type: 'work', primary: true },
    { value: 'alice@home.example', type: 'home' },
  ],
  active: true,
  [ENTERPRISE]: { department: 'Research', manager: { value: 'boss-1' } },
};

describe('SCIM PATCH', () => {
  describe('what Okta and Entra ID send (fixtures)', () => {
    for (const [name, f] of [...fixtures('okta'), ...fixtures('entra')]) {
      it(`${name}: ${f.title}`, () => {
        const before = structuredClone(f.current);
        const rt = f.resourceType === 'User' ? USER_RT : GROUP_RT;
        const ops = parsePatchOps(f.request, rt);
        if (f.resourceType === 'User') {
          assert.deepEqual(applyPatchToDoc(f.current.doc, ops, rt, f.current), f.expect.doc);
        } else {
          assert.deepEqual(planGroupPatch(ops, f.current), { doc: f.expect.doc, memberSteps: f.expect.memberSteps });
        }
        assert.deepEqual(f.current, before, 'the current document is left as it was');
      });
    }
  });

  describe('parsePatchOps', () => {
    it('reads op and member names in any case and tolerates a missing schemas', () => {
      const ops = parsePatchOps({ operations: [{ Op: 'REPLACE', Path: 'active', Value: false }] }, USER_RT);
      assert.equal(ops.length, 1);
      assert.equal(ops[0]?.op, 'replace');
      assert.equal(ops[0]?.path?.target.attr.name, 'active');
      assert.equal(ops[0]?.value, false);
      assert.equal(ops[0]?.index, 1);
    });

    it('resolves paths case-insensitively, URN-qualified or not', () => {
      const [a, b, c] = parseUser(
        add('NAME.GIVENNAME', 'x'),
        add('urn:ietf:params:scim:schemas:core:2.0:User:userName', 'x'),
        add('Emails[Type eq "work"].Value', 'x'),
      );
      assert.deepEqual([a?.path?.target.attr.name, a?.path?.target.sub?.name], ['name', 'givenName']);
      assert.equal(b?.path?.target.attr.name, 'userName');
      assert.deepEqual(
        [c?.path?.target.attr.name, c?.path?.target.sub?.name, c?.path?.filter?.kind],
        ['emails', 'value', 'compare'],
      );
    });

    it('keeps a "]" inside a quoted filter value', () => {
      const doc = patchUser(
        { userName: 'u', emails: [{ value: 'odd]name@example.com' }] },
        replace('emails[value eq "odd]name@example.com"].type', 'work'),
      );
      assert.deepEqual(doc.emails, [{ value: 'odd]name@example.com', type: 'work' }]);
    });

    it('refuses a body that is not a PatchOp message', () => {
      rejects(() => parsePatchOps([], USER_RT), 'invalidSyntax', /JSON object/);
      rejects(
        () => parsePatchOps({ schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], Operations: [] }, USER_RT),
        'invalidSyntax',
        /PatchOp/,
      );
      rejects(
        () => parsePatchOps({ schemas: [PATCH_OP_SCHEMA] }, USER_RT),
        'invalidSyntax',
        /Operations must be a non-empty array/,
      );
      rejects(() => parseUser(), 'invalidSyntax', /Operations must be a non-empty array/);
    });

    it(`refuses more than ${MAX_PATCH_OPERATIONS} operations as tooMany`, () => {
      const ops = Array.from({ length: MAX_PATCH_OPERATIONS + 1 }, () => add('nickName', 'x'));
      rejects(() => parseUser(...ops), 'tooMany', /1001 operations; at most 1000/);
    });

    it('names the operation of an unknown or missing op', () => {
      rejects(
        () => parseUser(add('nickName', 'x'), { op: 'move', path: 'nickName' }),
        'invalidSyntax',
        /^operation 2: op "move" is unknown: expected add, replace or remove$/,
      );
      rejects(() => parseUser({ path: 'nickName', value: 'x' }), 'invalidSyntax', /^operation 1: op is missing/);
      rejects(() => parseUser('replace'), 'invalidSyntax', /^operation 1: must be an object/);
    });

    it('refuses remove without a path as noTarget (RFC 7644 §3.5.2.2)', () => {
      rejects(() => parseUser({ op: 'Remove' }), 'noTarget', /^operation 1: remove needs a path/);
    });

    it('refuses add and replace without a value, and a no-path value that is not a map', () => {
      rejects(() => parseUser({ op: 'add', path: 'nickName' }), 'invalidValue', /^operation 1: add needs a value/);
      rejects(() => parseUser({ op: 'replace', value: 'Babs' }), 'invalidValue', /without a path needs an object/);
    });

    it('refuses paths naming nothing as invalidPath', () => {
      rejects(
        () => parseUser(add('nickname', 'x'), add('adreses', 'x')),
        'invalidPath',
        /^operation 2: path "adreses" names no attribute of User/,
      );
      rejects(() => parseUser(add('name.nickName', 'x')), 'invalidPath', /name\.nickName/);
      rejects(() => parseUser(add('emails[type eq "work"].city', 'x')), 'invalidPath', /not a sub-attribute of emails/);
      rejects(() => parseUser(add('emails[type eq "work"', 'x')), 'invalidPath', /unclosed/);
      rejects(() => parseUser(add('userName[value eq "x"]', 'x')), 'invalidPath', /no sub-attributes/);
      rejects(() => parseUser(add(`${ENTERPRISE}:badge`, 'x')), 'invalidPath', /names no attribute/);
      rejects(() => parseUser(add('members', 'x')), 'invalidPath', /names no attribute/);
    });

    it('refuses explicit paths to read-only attributes as mutability', () => {
      for (const path of ['id', 'meta', 'meta.created', 'groups', 'groups[value eq "g"]', `${MANAGER}.displayName`]) {
        rejects(() => parseUser(replace(path, 'x')), 'mutability', /read-only/);
      }
      rejects(
        () => parsePatchOps(message(remove('members[value eq "u"].display')), GROUP_RT),
        'mutability',
        /members\.display is read-only/,
      );
    });

    it('reports a malformed [filter] as invalidFilter', () => {
      rejects(() => parseUser(remove('emails[type equals "work"]')), 'invalidFilter', /^operation 1: /);
      rejects(() => parseUser(remove('emails[city eq "x"]')), 'invalidFilter', /no sub-attribute "city"/);
    });
  });

  describe('applyPatchToDoc', () => {
    it('returns a new document and never changes its input', () => {
      const before = structuredClone(alice);
      const after = patchUser(alice, replace('name.givenName', 'Alicia'), remove('emails'));
      assert.deepEqual(alice, before);
      assert.notEqual(after, alice);
      assert.deepEqual(after.name, { givenName: 'Alicia', familyName: 'Liddell' });
    });

    it('is all or nothing: a bad later operation throws and names its position', () => {
      rejects(
        () => patchUser(alice, replace('displayName', 'A'), replace('active', 'maybe')),
        'invalidValue',
        /^operation 2: active must be a boolean, got "maybe"$/,
      );
    });

    describe('without a path', () => {
      it('takes plain, dotted and URN-qualified keys, and a schema URN holding an object', () => {
        const doc = patchUser(alice, {
          op: 'replace',
          value: {
            displayName: 'Alice L.',
            'name.familyName': 'Pleasance',
            [`${ENTERPRISE}:department`]: 'Board',
            [ENTERPRISE]: { costCenter: '42', Manager: { Value: 'boss-2' } },
          },
        });
        assert.equal(doc.displayName, 'Alice L.');
        assert.deepEqual(doc.name, { givenName: 'Alice', familyName: 'Pleasance' });
        assert.deepEqual(doc[ENTERPRISE], { department: 'Board', costCenter: '42', manager: { value: 'boss-2' } });
      });

      it("accepts the resource's own id, ignores meta and schemas, and refuses another id", () => {
        const doc = patchUser(alice, {
          op: 'replace',
          value: { id: USER_ID, schemas: ['x'], meta: { resourceType: 'User' }, nickName: 'Al' },
        });
        assert.equal(doc.nickName, 'Al');
        assert.equal(doc.id, undefined);
        rejects(
          () => patchUser(alice, { op: 'replace', value: { id: 'someone-else' } }),
          'mutability',
          /^operation 1: id is read-only/,
        );
      });

      it('skips unknown attributes, unregistered extension URNs and read-only attributes', () => {
        const value = {
          adreses: 'x',
          'urn:example:ext:1.0:User': { color: 'red' },
          'urn:example:ext:1.0:User:color': 'red',
          groups: [{ value: 'g' }],
          title: 'Dr',
        };
        assert.deepEqual(patchUser(alice, { op: 'add', value }), { ...alice, title: 'Dr' });
      });

      it('appends to multi-valued attributes on add and replaces them on replace', () => {
        const other = { value: 'a@other.example', type: 'other' };
        assert.deepEqual(patchUser(alice, { op: 'add', value: { emails: [other] } }).emails, [
          ...(alice.emails as unknown[]),
          other,
        ]);
        assert.deepEqual(patchUser(alice, { op: 'replace', value: { emails: [other] } }).emails, [other]);
      });
    });

    describe('add with a path', () => {
      it('sets a singular attribute and merges into a complex one', () => {
        const doc = patchUser(alice, add('title', 'Dr'), add('name', { middleName: 'Pleasance' }));
        assert.equal(doc.title, 'Dr');
        assert.deepEqual(doc.name, { givenName: 'Alice', familyName: 'Liddell', middleName: 'Pleasance' });
      });

      it('appends to a multi-valued attribute, skipping exact duplicates', () => {
        const other = { value: 'alice@other.example', type: 'other' };
        const doc = patchUser(alice, add('emails', [{ value: 'alice@home.example', type: 'home' }, other]));
        assert.deepEqual(doc.emails, [...(alice.emails as unknown[]), other]);
      });

      it('leaves one primary: the element just made primary wins (RFC 7643 §2.4)', () => {
        const added = patchUser(alice, add('emails', [{ value: 'new@example.com', type: 'other', primary: 'True' }]));
        assert.deepEqual(added.emails, [
          { value: 'alice@example.com', type: 'work', primary: false },
          { value: 'alice@home.example', type: 'home' },
          { value: 'new@example.com', type: 'other', primary: true },
        ]);
        const flipped = patchUser(alice, replace('emails[type eq "home"].primary', true));
        assert.deepEqual(flipped.emails, [
          { value: 'alice@example.com', type: 'work', primary: false },
          { value: 'alice@home.example', type: 'home', primary: true },
        ]);
      });

      it('treats a filtered sub-attribute path like replace on the matching element', () => {
        const doc = patchUser(alice, add('emails[type eq "work"].value', 'alice@new.example'));
        assert.deepEqual((doc.emails as unknown[])[0], { value: 'alice@new.example', type: 'work', primary: true });
      });

      it("sets the manager from Entra's older one-element list", () => {
        const doc = patchUser(alice, { op: 'Add', path: MANAGER, value: [{ $ref: null, value: 'boss-2' }] });
        assert.deepEqual(doc[ENTERPRISE], { department: 'Research', manager: { value: 'boss-2' } });
      });

      it('sets a password and a new userName for the caller to hash and to check', () => {
        const doc = patchUser(alice, replace('password', 's3cret!'), {
          op: 'Replace',
          path: 'userName',
          value: 'alice2@example.com',
        });
        assert.equal(doc.password, 's3cret!');
        assert.equal(doc.userName, 'alice2@example.com');
      });
    });

    describe('replace with a path', () => {
      it('keeps the sub-attributes of a complex attribute that the value does not name (RFC 7644 §3.5.2.3)', () => {
        const doc = patchUser(alice, replace('name', { givenName: 'Alicia', formatted: '' }));
        assert.deepEqual(doc.name, { givenName: 'Alicia', familyName: 'Liddell' });
      });

      it('sets a sub-attribute on every matching element', () => {
        const doc = patchUser(alice, replace('emails[type eq "work" or type eq "home"].display', 'Alice'));
        assert.deepEqual(
          (doc.emails as { display?: string }[]).map((e) => e.display),
          ['Alice', 'Alice'],
        );
      });

      it('merges a value into the elements a filter selects', () => {
        const doc = patchUser(alice, replace('emails[type eq "home"]', { value: 'alice@cottage.example' }));
        assert.deepEqual((doc.emails as unknown[])[1], { value: 'alice@cottage.example', type: 'home' });
      });

      it('creates the element a conjunction of eq comparisons describes', () => {
        const doc = patchUser(
          alice,
          replace('phoneNumbers[type eq "mobile" and primary eq true].value', '55555555555'),
        );
        assert.deepEqual(doc.phoneNumbers, [{ type: 'mobile', primary: true, value: '55555555555' }]);
      });

      it('refuses a filter that matches nothing and does not describe an element, as noTarget', () => {
        rejects(
          () => patchUser(alice, replace('emails[value co "@nowhere"].type', 'work')),
          'noTarget',
          /^operation 1: emails\[value co "@nowhere"\]\.type matches no element of emails/,
        );
        rejects(
          () => patchUser(alice, replace(`${MANAGER}[value eq "boss-9"].value`, 'boss-2')),
          'noTarget',
          /matches no value of manager/,
        );
      });

      it('unsets an attribute replaced with null or "" (Entra SCIM_Null_Update_Test)', () => {
        const doc = patchUser(
          alice,
          replace('name', null),
          replace('emails', ''),
          replace(`${ENTERPRISE}:department`, ''),
        );
        assert.deepEqual(doc, {
          userName: 'alice@example.com',
          active: true,
          [ENTERPRISE]: { manager: { value: 'boss-1' } },
        });
      });

      it("drops the previous manager's display name and $ref with a new manager", () => {
        const bob = {
          userName: 'bob',
          [ENTERPRISE]: { manager: { value: 'boss-1', displayName: 'Boss', $ref: '../Users/boss-1' } },
        };
        const doc = patchUser(bob, { op: 'Replace', path: MANAGER, value: 'boss-2' });
        assert.deepEqual(doc[ENTERPRISE], { manager: { value: 'boss-2' } });
      });

      it('refuses removing a required attribute, naming it', () => {
        rejects(() => patchUser(alice, replace('userName', '')), 'invalidValue', /^operation 1: userName is required/);
        rejects(() => patchUser(alice, remove('userName')), 'invalidValue', /userName is required/);
      });
    });

    describe('remove', () => {
      it('unsets a singular attribute, a sub-attribute, and an emptied extension', () => {
        const doc = patchUser(
          alice,
          remove('active'),
          remove('name.familyName'),
          remove(`${ENTERPRISE}:department`),
          remove(MANAGER),
        );
        assert.deepEqual(doc, { userName: 'alice@example.com', name: { givenName: 'Alice' }, emails: alice.emails });
      });

      it('drops the elements a filter selects, or unsets a sub-attribute on them', () => {
        assert.deepEqual(patchUser(alice, remove('emails[type eq "work"]')).emails, [
          { value: 'alice@home.example', type: 'home' },
        ]);
        const withAddress = { ...alice, addresses: [{ type: 'work', locality: 'Oxford', country: 'GB' }] };
        assert.deepEqual(patchUser(withAddress, remove('addresses[type eq "work"].locality')).addresses, [
          { type: 'work', country: 'GB' },
        ]);
      });

      it('removes only the listed elements when a value list is given, by value', () => {
        const doc = patchUser(alice, remove('emails', [{ value: 'ALICE@HOME.EXAMPLE' }]));
        assert.deepEqual(doc.emails, [{ value: 'alice@example.com', type: 'work', primary: true }]);
      });

      it('removes every element without a value, and the attribute with them', () => {
        assert.equal(patchUser(alice, remove('emails')).emails, undefined);
      });

      it('removes the manager through manager[value eq "…"] only when it matches', () => {
        assert.deepEqual(patchUser(alice, remove('manager[value eq "boss-1"]'))[ENTERPRISE], {
          department: 'Research',
        });
        assert.deepEqual(patchUser(alice, remove(`${MANAGER}[value eq "boss-2"]`)), alice);
        assert.deepEqual(patchUser(alice, remove(MANAGER, [{ value: 'boss-2' }])), alice);
      });

      it('changes nothing when what it names is absent', () => {
        const bare: ScimDoc = { userName: 'u' };
        const doc = patchUser(
          bare,
          remove('title'),
          remove('emails[type eq "work"]'),
          remove('name.givenName'),
          remove(MANAGER),
        );
        assert.deepEqual(doc, bare);
      });
    });
  });

  describe('planGroupPatch', () => {
    const group: ScimDoc = { displayName: 'Engineering', externalId: 'eng' };

    it('turns membership operations into steps in request order, never touching the doc', () => {
      const plan = planGroup(
        group,
        remove('members[value eq "u1" or value eq "u2"]'),
        add('members', [{ value: 'g1', type: 'group' }, 'u3']),
        replace('members', [{ value: 'u4', type: 'User' }]),
        replace('members', []),
      );
      assert.deepEqual(plan.memberSteps, [
        { kind: 'remove', ids: ['u1', 'u2'] },
        { kind: 'add', members: [{ value: 'g1', type: 'Group' }, { value: 'u3' }] },
        { kind: 'replaceAll', members: [{ value: 'u4', type: 'User' }] },
        { kind: 'removeAll' },
      ]);
      assert.deepEqual(plan.doc, group);
    });

    it('takes members out of a no-path value map and patches the rest as attributes', () => {
      const plan = planGroup(
        group,
        { op: 'add', value: { members: [{ value: 'u1' }] } },
        {
          op: 'replace',
          value: {
            id: GROUP_ID,
            displayName: 'Platform',
            'urn:ietf:params:scim:schemas:core:2.0:Group': { members: [{ value: 'u2' }] },
          },
        },
        { op: 'Replace', path: 'externalId', value: 'platform' },
      );
      assert.deepEqual(plan.memberSteps, [
        { kind: 'add', members: [{ value: 'u1' }] },
        { kind: 'replaceAll', members: [{ value: 'u2' }] },
      ]);
      assert.deepEqual(plan.doc, { displayName: 'Platform', externalId: 'platform' });
    });

    it('refuses member values that are not non-empty strings, naming the operation', () => {
      rejects(
        () => planGroup(group, add('displayName', 'x'), add('members', [{ value: 'u1' }, { display: 'no id' }])),
        'invalidValue',
        /^operation 2: members\[1\]\.value must be a non-empty string/,
      );
      rejects(() => planGroup(group, add('members', [{ value: 42 }])), 'invalidValue', /got 42/);
      rejects(() => planGroup(group, add('members', [''])), 'invalidValue', /members\[0\]\.value/);
      rejects(
        () => planGroup(group, add('members', [{ value: 'u1', type: 'Robot' }])),
        'invalidValue',
        /type must be "User" or "Group"/,
      );
    });

    it('refuses member filters other than value eq joined with or, and other member paths', () => {
      rejects(
        () => planGroup(group, remove('members[value eq "u1" and type eq "User"]')),
        'invalidFilter',
        /^operation 1: .*members can only be selected by value eq/,
      );
      rejects(() => planGroup(group, remove('members[value sw "u"]')), 'invalidFilter', /value eq/);
      rejects(
        () => planGroup(group, add('members[value eq "u1"]', [{ value: 'u1' }])),
        'invalidPath',
        /add takes the path "members" without a filter/,
      );
      rejects(
        () => planGroup(group, replace('members.value', 'u1')),
        'invalidPath',
        /sub-attributes cannot be changed/,
      );
      rejects(() => planGroup(group, add('nickName', 'x')), 'invalidPath', /names no attribute of Group/);
    });

    it("refuses a rename carrying another group's id, naming the operation", () => {
      rejects(
        () => planGroup(group, add('members', 'u1'), { op: 'replace', value: { id: 'other', displayName: 'X' } }),
        'mutability',
        /^operation 2: id is read-only/,
      );
    });

    it('refuses removing the displayName', () => {
      rejects(() => planGroup(group, remove('displayName')), 'invalidValue', /displayName is required/);
    });
  });
});
