import assert from 'node:assert/strict';
import { InvalidInput } from '../../../src/errors.js';
import type { Filter } from '../../../src/scim/filter/ast.js';
import { matchesElement } from '../../../src/scim/filter/match.js';
import { parseFilter } from '../../../src/scim/filter/parser.js';
import { GROUP_RT, USER_RT, type ResourceType } from '../../../src/directory/model/registry.js';

/** The inner filter of a value path, as the PATCH engine holds it for `attr[...]`. */
function inner(valuePath: string, rt: ResourceType = USER_RT): Filter {
  const f = parseFilter(valuePath, rt);
  if (f.kind !== 'valuePath') throw new Error(`${valuePath} is not a value path`);
  return f.filter;
}

function matching(valuePath: string, elements: Record<string, unknown>[], rt: ResourceType = USER_RT): number[] {
  const f = inner(valuePath, rt);
  return elements.flatMap((e, i) => (matchesElement(f, e) ? [i] : []));
}

const emails = [
  { value: 'Bob@Example.com', type: 'work', primary: true },
  { value: 'bob@home.example.org', type: 'home' },
  { value: 'bob@other.example.net' },
];

describe('matchesElement', () => {
  it("finds Okta's member to remove, comparing members.value case-exactly", () => {
    const members = [{ value: '89bb1940-b905', display: 'a' }, { value: '89BB1940-B905' }, { value: '23a3' }];
    assert.deepEqual(matching('members[value eq "89bb1940-b905"]', members, GROUP_RT), [0]);
  });

  it('compares case-insensitive sub-attributes on their prepared keys', () => {
    assert.deepEqual(matching('emails[type eq "WORK"]', emails), [0]);
    assert.deepEqual(matching('emails[value eq "bob@example.COM"]', emails), [0]);
    assert.deepEqual(matching('emails[value eq "ＢＯＢ@example.com"]', emails), [0]);
  });

  it('requires every condition of the filter on the same element', () => {
    assert.deepEqual(matching('emails[type eq "work" and value co "example.com"]', emails), [0]);
    assert.deepEqual(matching('emails[type eq "work" and value co "home"]', emails), []);
    assert.deepEqual(matching('emails[type eq "home" or value ew ".net"]', emails), [1, 2]);
  });

  it('evaluates Entra\'s emails[type eq "work"].value eq "x" as both conditions on one element', () => {
    assert.deepEqual(matching('emails[type eq "work"].value eq "bob@example.com"', emails), [0]);
    assert.deepEqual(matching('emails[type eq "home"].value eq "bob@example.com"', emails), []);
  });

  it('selects the element a PATCH path such as addresses[type eq "work"].locality names', () => {
    const addresses = [
      { type: 'home', locality: 'Lyon' },
      { type: 'work', locality: 'Paris' },
    ];
    assert.deepEqual(matching('addresses[type eq "work"]', addresses), [1]);
  });

  it('lets ne and not select elements that lack the sub-attribute', () => {
    assert.deepEqual(matching('emails[type ne "work"]', emails), [1, 2]);
    assert.deepEqual(matching('emails[not (type eq "work")]', emails), [1, 2]);
    assert.deepEqual(matching('emails[type eq null]', emails), [2]);
    assert.deepEqual(matching('emails[type ne null]', emails), [0, 1]);
  });

  it('treats null and "" as absent for pr', () => {
    const list = [{ display: 'x' }, { display: '' }, { display: null }, {}];
    assert.deepEqual(matching('emails[display pr]', list), [0]);
  });

  it('compares booleans, accepting Entra\'s "True"/"False" on either side', () => {
    const list = [{ primary: true }, { primary: 'True' }, { primary: false }, {}];
    assert.deepEqual(matching('emails[primary eq true]', list), [0, 1]);
    assert.deepEqual(matching('emails[primary eq "TRUE"]', list), [0, 1]);
    assert.deepEqual(matching('emails[primary eq false]', list), [2]);
    assert.deepEqual(matching('emails[primary ne true]', list), [2, 3]);
  });

  it('applies co, sw, ew and text ordering to the prepared keys', () => {
    assert.deepEqual(matching('emails[value sw "BOB@H"]', emails), [1]);
    assert.deepEqual(matching('emails[value ew ".ORG"]', emails), [1]);
    assert.deepEqual(matching('emails[value co "OTHER"]', emails), [2]);
    assert.deepEqual(matching('emails[value gt "bob@h"]', emails), [1, 2]);
    assert.deepEqual(matching('emails[value le "bob@example.com"]', emails), [0]);
  });

  it('keeps accents: rené is not rene', () => {
    const list = [{ value: 'rené@x.org' }, { value: 'rene\u0301@x.org' }, { value: 'rene@x.org' }];
    assert.deepEqual(matching('emails[value eq "RENÉ@x.org"]', list), [0, 1]);
  });

  it('finds sub-attributes whatever the case of their keys', () => {
    assert.deepEqual(matching('emails[type eq "work" and primary eq true]', [{ Type: 'work', PRIMARY: true }]), [0]);
  });

  it('refuses a whole value path in place of its inner filter', () => {
    assert.throws(
      () => matchesElement(parseFilter('emails[type eq "work"]', USER_RT), emails[0]!),
      /value path inside a value path/,
    );
  });

  it('rejects a hand-built boolean comparison with a non-boolean literal', () => {
    const f = inner('emails[primary eq true]');
    if (f.kind !== 'compare') return assert.fail('unexpected shape');
    assert.throws(
      () => matchesElement({ ...f, value: 'yes' }, { primary: true }),
      (err: unknown) =>
        err instanceof InvalidInput &&
        err.extra.scimType === 'invalidFilter' &&
        err.message.includes('"yes" is not true or false'),
    );
  });
});
