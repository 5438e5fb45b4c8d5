import assert from 'node:assert/strict';
import { buildTenant } from '../../support/factories.js';
import { useApp } from '../../support/harness.js';
import { scimClient, USER } from '../../support/scim.js';

const SEARCH = 'urn:ietf:params:scim:api:messages:2.0:SearchRequest';

describe('SCIM /.search: SearchRequest members are type-checked', () => {
  const app = useApp();
  let scim: ReturnType<typeof scimClient>;
  before(async () => {
    scim = scimClient(app, (await buildTenant()).scimToken);
    await scim.post('/Users', { schemas: [USER], userName: 'search@x.io', title: 'T' }).expect(201);
  });

  const wrong: [string, unknown][] = [
    ['attributes', 1],
    ['attributes', ['userName', 2]],
    ['attributes', {}],
    ['attributes', 'userName'],
    ['excludedAttributes', true],
    ['excludedAttributes', [null]],
    ['startIndex', '1'],
    ['startIndex', 1.5],
    ['count', [10]],
    ['count', {}],
    ['filter', 7],
    ['filter', { op: 'eq' }],
    ['sortBy', ['userName']],
    ['sortOrder', 1],
  ];
  for (const path of ['/.search', '/Users/.search', '/Groups/.search']) {
    it(`${path}: a member of the wrong type → 400 invalidValue naming it`, async () => {
      for (const [member, value] of wrong) {
        const res = await scim.post(path, { schemas: [SEARCH], [member]: value });
        assert.equal(res.status, 400, `${member}: ${JSON.stringify(value)} → ${res.status}`);
        assert.equal(res.body.scimType, 'invalidValue', member);
        assert.match(res.body.detail, new RegExp(`^${member} `), member);
      }
    });
  }

  it('a filter past its cost limits → 400 invalidFilter naming the limit, before it runs', async () => {
    const subs = Array.from({ length: 11 }, (_, i) => `title co "${i}"`).join(' or ');
    for (const path of ['/.search', '/Users/.search']) {
      const res = await scim.post(path, { schemas: [SEARCH], filter: subs }).expect(400);
      assert.equal(res.body.scimType, 'invalidFilter');
      assert.match(res.body.detail, /more than 10 "co", "sw" or "ew" comparisons/);
    }
    const deep = `${'('.repeat(33)}title pr${')'.repeat(33)}`;
    assert.match(
      (await scim.get(`/Users?filter=${encodeURIComponent(deep)}`).expect(400)).body.detail,
      /deeper than 32 levels/,
    );
  });

  it('well-typed members still work, null meaning absent', async () => {
    const res = await scim
      .post('/Users/.search', {
        schemas: [SEARCH],
        attributes: ['title'],
        excludedAttributes: null,
        startIndex: 1,
        count: 5,
        filter: 'userName eq "search@x.io"',
        sortBy: 'userName',
        sortOrder: 'descending',
      })
      .expect(200);
    assert.equal(res.body.totalResults, 1);
    assert.deepEqual(Object.keys(res.body.Resources[0]).sort(), ['id', 'schemas', 'title']);
    const q = await scim.get('/Users?attributes=title&attributes=userName&startIndex=1&count=5').expect(200);
    assert.deepEqual(Object.keys(q.body.Resources[0]).sort(), ['id', 'schemas', 'title', 'userName']);
  });
});
