import assert from 'node:assert/strict';
import { jsonDepth, isJsonContentType } from '../../src/http/body.js';

describe('JSON depth scan', () => {
  it('counts nesting of arrays and objects, ignoring brackets inside strings', () => {
    assert.equal(jsonDepth(Buffer.from('{"a":[1,{"b":"[[[{{{"}]}'), 99), 3);
    assert.equal(jsonDepth(Buffer.from('"\\"[["'), 99), 0);
    assert.equal(jsonDepth(Buffer.from('[]'), 99), 1);
  });

  it('stops counting as soon as the limit is passed', () => {
    const deep = Buffer.from('['.repeat(100000) + ']'.repeat(100000));
    assert.equal(jsonDepth(deep, 32), 33);
  });

  it('accepts application/json and any +json type, with parameters', () => {
    assert.ok(isJsonContentType('application/json'));
    assert.ok(isJsonContentType('application/scim+json; charset=utf-8'));
    assert.ok(!isJsonContentType('text/plain'));
    assert.ok(!isJsonContentType(undefined));
  });
});
