import assert from 'node:assert/strict';
import { hashToken, kindOfToken, mintToken } from '../../src/tenants/tokens.js';
import { parseDuration } from '../../src/text/duration.js';

describe('tokens', () => {
  it('carries a recognisable prefix per kind and at least 256 random bits', () => {
    const scim = mintToken('scim');
    const admin = mintToken('admin');
    assert.match(scim.token, /^roster_scim_[A-Za-z0-9_-]{43}$/);
    assert.match(admin.token, /^roster_admin_[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(scim.token.slice('roster_scim_'.length), 'base64url').length, 32);
    assert.equal(kindOfToken(scim.token), 'scim');
    assert.equal(kindOfToken(admin.token), 'admin');
    assert.notEqual(mintToken('scim').token, scim.token);
  });

  it('keeps only a hash and a short hint, never the secret', () => {
    const t = mintToken('scim');
    assert.equal(t.hash, hashToken(t.token));
    assert.equal(t.hash.length, 64);
    assert.ok(!t.hash.includes(t.token.slice(12)));
    assert.ok(t.hint.length < 24 && t.token.startsWith(t.hint.slice(0, -1)));
  });

  it('parses durations with units s, m, h and d, and refuses anything else', () => {
    assert.equal(parseDuration('45s'), 45_000);
    assert.equal(parseDuration('30m'), 1_800_000);
    assert.equal(parseDuration('12h'), 43_200_000);
    assert.equal(parseDuration('90d'), 90 * 86_400_000);
    for (const bad of ['90', 'd', '1w', '-1d', '0d', '1.5h', '']) assert.equal(parseDuration(bad), undefined, bad);
  });
});
