import assert from 'node:assert/strict';
import { buildTenant } from '../../support/factories.js';
import { useApp } from '../../support/harness.js';
import { GROUP, patchBody, scimClient, USER } from '../../support/scim.js';

/**
 * A write reads only `attributes` / `excludedAttributes`, before it writes. List-only parameters
 * (`count`, `sortOrder`, `filter`, `startIndex`), which RFC 7644 defines for lists only, are
 * ignored: they used to be parsed after the write had committed and answer 400 all the same.
 */
describe('SCIM single-resource writes and their query parameters', () => {
  const app = useApp();
  let scim: ReturnType<typeof scimClient>;
  before(async () => {
    scim = scimClient(app, (await buildTenant()).scimToken);
  });
  const usersNamed = async (name: string) =>
    (await scim.get(`/Users?filter=${encodeURIComponent(`userName eq "${name}"`)}`).expect(200)).body.totalResults;
  const groupsNamed = async (name: string) =>
    (await scim.get(`/Groups?filter=${encodeURIComponent(`displayName eq "${name}"`)}`).expect(200)).body.totalResults;

  it('list-only parameters on a write are ignored: the write answers 2xx', async () => {
    const created = await scim.post('/Users?count=x', { schemas: [USER], userName: 'q@x.io' }).expect(201);
    assert.equal(await usersNamed('q@x.io'), 1);
    const id = created.body.id;
    await scim
      .patch(`/Users/${id}?sortOrder=sideways`, patchBody({ op: 'replace', path: 'title', value: 'changed' }))
      .expect(200);
    assert.equal((await scim.get(`/Users/${id}`).expect(200)).body.title, 'changed');
    const put = await scim
      .put(`/Users/${id}?filter=a&filter=b`, { schemas: [USER], userName: 'renamed@x.io' })
      .expect(200);
    assert.equal(put.body.userName, 'renamed@x.io');
    await scim.post('/Groups?startIndex=1e999', { schemas: [GROUP], displayName: 'made' }).expect(201);
    assert.equal(await groupsNamed('made'), 1);
    await scim.get(`/Users/${id}?count=x&sortOrder=sideways`).expect(200);
  });

  it('attributes and excludedAttributes still shape what a write returns', async () => {
    const created = await scim
      .post('/Users?attributes=userName&count=x', { schemas: [USER], userName: 'shaped@x.io', title: 'T' })
      .expect(201);
    assert.equal(created.body.userName, 'shaped@x.io');
    assert.equal(created.body.title, undefined);
    const patched = await scim
      .patch(
        `/Users/${created.body.id}?excludedAttributes=title&sortOrder=x`,
        patchBody({ op: 'replace', path: 'title', value: 'U' }),
      )
      .expect(200);
    assert.equal(patched.body.title, undefined);
    assert.equal(patched.body.userName, 'shaped@x.io');
  });
});
