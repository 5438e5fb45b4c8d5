import assert from 'node:assert/strict';
import { buildTenant } from '../../support/factories.js';
import { useApp } from '../../support/harness.js';
import { scimClient, USER } from '../../support/scim.js';

describe('SCIM paging through the seek cache', () => {
  const app = useApp();

  async function withUsers(n: number, prefix: string) {
    const scim = scimClient(app, (await buildTenant()).scimToken);
    const ids: string[] = [];
    for (let i = 0; i < n; i++)
      ids.push((await scim.post('/Users', { schemas: [USER], userName: `${prefix}${i}@x.io` }).expect(201)).body.id);
    return { scim, ids };
  }

  const page = async (scim: ReturnType<typeof scimClient>, startIndex: number) =>
    (
      await scim
        .get(`/Users?startIndex=${startIndex}&count=5&filter=${encodeURIComponent('userName sw "p"')}`)
        .expect(200)
    ).body;

  it('paging forward while earlier rows are deleted repeats no row and skips none that stays', async () => {
    const { scim, ids } = await withUsers(20, 'p');
    const seen: string[] = [];
    seen.push(...(await page(scim, 1)).Resources.map((u: { id: string }) => u.id));
    // Delete two users of the first page: OFFSET would now skip two rows.
    for (const id of ids.slice(1, 3)) await scim.delete(`/Users/${id}`).expect(204);
    for (let start = 6; ; start += 5) {
      const body = await page(scim, start);
      if (start > body.totalResults) break;
      seen.push(...body.Resources.map((u: { id: string }) => u.id));
    }
    assert.equal(new Set(seen).size, seen.length, 'a row came twice');
    // Pages 6, 11 and 16 of a total now 18: the seek continues after each page's last row.
    assert.deepEqual(seen, ids);
  });

  it("one tenant's walk never moves another tenant's page", async () => {
    const a = await withUsers(10, 'p');
    const b = await withUsers(10, 'p');
    await page(a.scim, 1);
    await page(b.scim, 1);
    for (const id of a.ids.slice(0, 3)) await a.scim.delete(`/Users/${id}`).expect(204);
    await page(a.scim, 1);
    const second = await page(b.scim, 6);
    assert.deepEqual(
      second.Resources.map((u: { id: string }) => u.id),
      b.ids.slice(5, 10),
    );
  });
});
