import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { testDb } from '../../support/db.js';
import { buildTenant, type TestTenant } from '../../support/factories.js';
import { useApp } from '../../support/harness.js';
import { GROUP, scimClient, USER } from '../../support/scim.js';
import { cloneRows } from '../../support/seed.js';

/**
 * A user's `groups` share SCIM_MEMBERS_PER_RESPONSE with group members: a response carries at
 * most that many, and users past it come without `groups` (never a partial list), however many
 * groups a user is in. The management API's list of a user's IdP groups is paged.
 */
describe("a user's groups are bounded per response and paged", function () {
  this.timeout(60000);
  const app = useApp({ SCIM_MEMBERS_PER_RESPONSE: '5' });
  let t: TestTenant;
  let scim: ReturnType<typeof scimClient>;
  before(async () => {
    t = await buildTenant();
    scim = scimClient(app, t.scimToken);
  });

  /** A user (named `name`) in `n` SCIM groups, the first made over SCIM, the rest copied in bulk. */
  async function userInGroups(name: string, n: number): Promise<string> {
    const uid = (await scim.post('/Users', { schemas: [USER], userName: `${name}@x.io` }).expect(201)).body.id;
    const g = (
      await scim.post('/Groups', { schemas: [GROUP], displayName: `${name}-0`, members: [{ value: uid }] }).expect(201)
    ).body.id;
    if (n > 1) {
      const groups = await cloneRows('idp_groups', { tenant_id: t.tenant.id, id: g }, n - 1, (i) => ({
        id: randomUUID(),
        display_name: `${name}-${i + 1}`,
        display_name_key: `${name}-${i + 1}`,
        external_id: null,
      }));
      await cloneRows('idp_group_members', { tenant_id: t.tenant.id, group_id: g }, n - 1, (i) => ({
        group_id: groups[i]!.id,
      }));
    }
    return uid;
  }

  it('GET /Users/{id} of a user in more groups than the budget comes without groups, reading few rows', async () => {
    const few = await userInGroups('few', 3);
    const groups = (await scim.get(`/Users/${few}`).expect(200)).body.groups as { display: string }[];
    assert.deepEqual(
      groups.map((g) => g.display),
      ['few-0', 'few-1', 'few-2'],
    );
    const many = await userInGroups('many', 2000);
    const knex = (await testDb()).knex;
    let rows = 0;
    const count = (response: unknown, query: { sql: string }) => {
      if (/idp_group_members/.test(query.sql) && Array.isArray(response)) rows += response.length;
    };
    knex.on('query-response', count);
    try {
      const body = (await scim.get(`/Users/${many}`).expect(200)).body;
      assert.equal(body.userName, 'many@x.io');
      assert.equal(body.groups, undefined);
    } finally {
      knex.off('query-response', count);
    }
    assert.ok(rows <= 3 * 6, `${rows} membership rows read`);
    // Its groups stay readable from the groups' side, as the README says.
    const filter = encodeURIComponent(`members.value eq "${many}"`);
    assert.equal(
      (await scim.get(`/Groups?filter=${filter}&excludedAttributes=members&count=1`).expect(200)).body.totalResults,
      2000,
    );
  });

  it('a list page gives users their groups in page order while the total fits', async () => {
    const ids = [await userInGroups('pa', 2), await userInGroups('pb', 3), await userInGroups('pc', 1)];
    const filter = encodeURIComponent('userName sw "p"');
    const list = await scim.get(`/Users?filter=${filter}&sortBy=userName`).expect(200);
    assert.deepEqual(
      list.body.Resources.map((u: { id: string; groups?: unknown[] }) => [u.id, u.groups?.length ?? null]),
      [
        [ids[0], 2],
        [ids[1], 3],
        [ids[2], null],
      ],
    );
  });

  it('GET /api/v1/users/{id}/idp-groups is paged with limit and cursor', async () => {
    const uid = await userInGroups('paged', 7);
    const names: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: request.Response = await request(app)
        .get(`/api/v1/users/${uid}/idp-groups`)
        .query({ limit: 3, ...(cursor ? { cursor } : {}) })
        .set(t.admin)
        .expect(200);
      assert.ok(page.body.items.length <= 3);
      names.push(
        ...page.body.items.map(
          (g: { displayName: string; direct: boolean }) => (assert.equal(g.direct, true), g.displayName),
        ),
      );
      cursor = page.body.nextCursor;
      pages++;
    } while (cursor);
    assert.equal(pages, 3);
    assert.deepEqual(
      names,
      Array.from({ length: 7 }, (_, i) => `paged-${i}`),
    );
    await request(app).get(`/api/v1/users/${uid}/idp-groups`).query({ cursor: 'nope' }).set(t.admin).expect(400);
    await request(app).get(`/api/v1/users/${uid}/idp-groups`).query({ limit: 501 }).set(t.admin).expect(400);
  });
});
