import assert from 'node:assert/strict';
import { testDb } from '../../support/db.js';
import { buildTenant } from '../../support/factories.js';
import { useApp } from '../../support/harness.js';
import { GROUP, scimClient, USER } from '../../support/scim.js';

interface GroupDoc {
  displayName: string;
  members?: { value: string }[];
}

describe('SCIM group members per response are bounded (SCIM_MEMBERS_PER_RESPONSE)', () => {
  const app = useApp({ SCIM_MEMBERS_PER_RESPONSE: '5' });
  let scim: ReturnType<typeof scimClient>;
  const ids: Record<string, string> = {};
  before(async () => {
    scim = scimClient(app, (await buildTenant()).scimToken);
    const users: string[] = [];
    for (let i = 0; i < 60; i++)
      users.push((await scim.post('/Users', { schemas: [USER], userName: `m${i}@x.io` }).expect(201)).body.id);
    const sizes: [string, number][] = [
      ['A', 2],
      ['B', 3],
      ['C', 1],
      ['D', 4],
      ['E', 60],
    ];
    for (const [name, n] of sizes) {
      const members = users.slice(0, n).map((value) => ({ value }));
      ids[name] = (await scim.post('/Groups', { schemas: [GROUP], displayName: name, members }).expect(201)).body.id;
    }
  });

  const shape = (resources: GroupDoc[]) => resources.map((g) => [g.displayName, g.members?.length ?? null]);

  it('a list page carries members group by group until the budget; later groups come without members', async () => {
    const list = await scim.get('/Groups?sortBy=displayName').expect(200);
    assert.deepEqual(shape(list.body.Resources), [
      ['A', 2],
      ['B', 3],
      ['C', null],
      ['D', null],
      ['E', null],
    ]);
    const search = await scim.post('/Groups/.search', { sortBy: 'displayName', startIndex: 3 }).expect(200);
    assert.deepEqual(shape(search.body.Resources), [
      ['C', 1],
      ['D', 4],
      ['E', null],
    ]);
    const root = await scim
      .post('/.search', { filter: 'displayName eq "D" or displayName eq "E"', sortBy: 'displayName' })
      .expect(200);
    assert.deepEqual(shape(root.body.Resources), [
      ['D', 4],
      ['E', null],
    ]);
    const excluded = await scim.get('/Groups?sortBy=displayName&excludedAttributes=members').expect(200);
    assert.deepEqual(shape(excluded.body.Resources), [
      ['A', null],
      ['B', null],
      ['C', null],
      ['D', null],
      ['E', null],
    ]);
  });

  it('one group larger than the budget is returned without members, never a partial list', async () => {
    assert.equal((await scim.get(`/Groups/${ids.D}`).expect(200)).body.members.length, 4);
    const e = await scim.get(`/Groups/${ids.E}`).expect(200);
    assert.equal(e.body.displayName, 'E');
    assert.equal(e.body.members, undefined);
    assert.equal((await scim.get(`/Groups/${ids.E}?attributes=members`).expect(200)).body.members, undefined);
    // Its members stay readable page by page through the users' groups.
    const page = await scim
      .get(`/Users?count=10&filter=${encodeURIComponent(`groups.value eq "${ids.E}"`)}`)
      .expect(200);
    assert.equal(page.body.totalResults, 60);
  });

  it('reads about as many member rows as it returns, not the whole group', async () => {
    const knex = (await testDb()).knex;
    let rows = 0;
    const count = (response: unknown, query: { sql: string }) => {
      if (/idp_group_members/.test(query.sql) && Array.isArray(response)) rows += response.length;
    };
    knex.on('query-response', count);
    try {
      await scim.get(`/Groups/${ids.E}`).expect(200);
      await scim.get('/Groups?sortBy=displayName').expect(200);
    } finally {
      knex.off('query-response', count);
    }
    assert.ok(rows > 0 && rows <= 3 * (5 + 1) * 2, `${rows} member rows read`);
  });
});
