import assert from 'node:assert/strict';
import { testDb } from '../../support/db.js';
import { buildTenant, type TestTenant } from '../../support/factories.js';
import { useApp } from '../../support/harness.js';
import { GROUP, patchBody, scimClient } from '../../support/scim.js';
import { seedIdpMembers, seedUsers } from '../../support/seed.js';

/**
 * One request names at most 1,000 group members (README "Limits"): a 20,000-member PATCH held
 * SQLite's event loop for seconds in one transaction. Past the cap: 400 naming `members` and the
 * cap, and nothing written.
 */
describe('SCIM group members per request are capped at 1,000', function () {
  this.timeout(60000);
  const app = useApp();
  let t: TestTenant;
  let scim: ReturnType<typeof scimClient>;
  let users: string[];
  before(async () => {
    t = await buildTenant();
    scim = scimClient(app, t.scimToken);
    users = await seedUsers(app, t, 1001);
  });

  const refs = (ids: string[]) => ids.map((value) => ({ value }));
  const memberCount = async (groupId: string) =>
    Number(
      (
        await (
          await testDb()
        )
          .knex('idp_group_members')
          .where({ tenant_id: t.tenant.id, group_id: groupId })
          .count({ n: '*' })
          .first()
      )?.n,
    );
  const refused = (res: { status: number; body: { scimType?: string; detail?: string } }) => {
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.scimType, 'invalidValue');
    assert.match(res.body.detail ?? '', /members/);
    assert.match(res.body.detail ?? '', /1000/);
  };
  const newGroup = async (displayName: string) =>
    (await scim.post('/Groups', { schemas: [GROUP], displayName }).expect(201)).body.id as string;

  it('a PATCH adding 1,001 members, in one operation or several, is refused and changes nothing', async () => {
    const g = await newGroup('patch-add');
    const before = (await scim.get(`/Groups/${g}`).expect(200)).headers.etag;
    refused(await scim.patch(`/Groups/${g}`, patchBody({ op: 'add', path: 'members', value: refs(users) })));
    refused(
      await scim.patch(
        `/Groups/${g}`,
        patchBody(
          { op: 'add', path: 'members', value: refs(users.slice(0, 600)) },
          { op: 'Add', value: { members: refs(users.slice(600)) } },
        ),
      ),
    );
    refused(await scim.patch(`/Groups/${g}`, patchBody({ op: 'remove', path: 'members', value: refs(users) })));
    assert.equal(await memberCount(g), 0);
    assert.equal((await scim.get(`/Groups/${g}`).expect(200)).headers.etag, before);
  });

  it('1,000 members in one PATCH are accepted', async () => {
    const g = await newGroup('patch-1000');
    await scim
      .patch(`/Groups/${g}`, patchBody({ op: 'add', path: 'members', value: refs(users.slice(0, 1000)) }))
      .expect(204);
    assert.equal(await memberCount(g), 1000);
  });

  it('a POST or PUT with 1,001 members is refused and changes nothing', async () => {
    refused(await scim.post('/Groups', { schemas: [GROUP], displayName: 'post-1001', members: refs(users) }));
    const found = await scim.get(`/Groups?filter=${encodeURIComponent('displayName eq "post-1001"')}`).expect(200);
    assert.equal(found.body.totalResults, 0);
    const g = await newGroup('put-1001');
    refused(await scim.put(`/Groups/${g}`, { schemas: [GROUP], displayName: 'renamed', members: refs(users) }));
    assert.equal((await scim.get(`/Groups/${g}`).expect(200)).body.displayName, 'put-1001');
    assert.equal(await memberCount(g), 0);
  });

  it('replacing or removing all members of a group of more than 1,000 is refused; of 1,000 it empties the group', async () => {
    const big = await newGroup('big');
    await seedIdpMembers(t, big, users);
    refused(await scim.patch(`/Groups/${big}`, patchBody({ op: 'remove', path: 'members' })));
    refused(await scim.patch(`/Groups/${big}`, patchBody({ op: 'replace', path: 'members', value: [] })));
    refused(
      await scim.patch(`/Groups/${big}`, patchBody({ op: 'replace', path: 'members', value: refs(users.slice(0, 1)) })),
    );
    refused(
      await scim.put(`/Groups/${big}`, { schemas: [GROUP], displayName: 'big', members: refs(users.slice(0, 1)) }),
    );
    assert.equal(await memberCount(big), 1001);
    // Paged removal by value works, and then the rest can go at once.
    await scim
      .patch(`/Groups/${big}`, patchBody({ op: 'remove', path: `members[value eq "${users[0]}"]` }))
      .expect(204);
    await scim.patch(`/Groups/${big}`, patchBody({ op: 'remove', path: 'members' })).expect(204);
    assert.equal(await memberCount(big), 0);
  });
});
