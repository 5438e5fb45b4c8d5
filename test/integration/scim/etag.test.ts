import assert from 'node:assert/strict';
import { buildTenant } from '../../support/factories.js';
import { useApp } from '../../support/harness.js';
import { GROUP, patchBody, scimClient, USER } from '../../support/scim.js';

const BULK = 'urn:ietf:params:scim:api:messages:2.0:BulkRequest';
const title = (value: string) => patchBody({ op: 'replace', path: 'title', value });

describe('SCIM ETags (RFC 7644 §3.14, RFC 9110 §13.1)', () => {
  const app = useApp();

  async function userAtVersion(scim: ReturnType<typeof scimClient>, writes: number) {
    const id = (await scim.post('/Users', { schemas: [USER], userName: `e${Math.random()}@x.io` }).expect(201)).body
      .id as string;
    for (let i = 0; i < writes; i++) await scim.patch(`/Users/${id}`, title(`t${i}`)).expect(200);
    const u = (await scim.get(`/Users/${id}`).expect(200)).body;
    return { id, version: Number(/"(\d+)"/.exec(u.meta.version)![1]), title: u.title as string | undefined };
  }

  it('If-Match: a list matches when any of its tags names the current version', async () => {
    const scim = scimClient(app, (await buildTenant()).scimToken);
    const u = await userAtVersion(scim, 2);
    const res = await scim
      .patch(`/Users/${u.id}`, title('listed'), { 'If-Match': `"${u.version - 2}", W/"${u.version}"` })
      .expect(200);
    assert.equal(res.body.title, 'listed');
    const g = (await scim.post('/Groups', { schemas: [GROUP], displayName: 'L' }).expect(201)).body;
    await scim
      .put(`/Groups/${g.id}`, { schemas: [GROUP], displayName: 'L2' }, { 'If-Match': `"abc", ${g.meta.version}` })
      .expect(200);
  });

  it('If-Match: a well-formed tag this server never issued → 412 and nothing changes', async () => {
    const scim = scimClient(app, (await buildTenant()).scimToken);
    const u = await userAtVersion(scim, 1);
    for (const tag of ['W/"abc"', '"xyzzy"', '"1234567890123"', `"0${u.version}"`, '""']) {
      const res = await scim.patch(`/Users/${u.id}`, title('no'), { 'If-Match': tag }).expect(412);
      assert.equal(res.body.status, '412', tag);
      await scim.delete(`/Users/${u.id}`, { 'If-Match': tag }).expect(412);
    }
    const after = await scim.get(`/Users/${u.id}`).expect(200);
    assert.equal(after.body.title, u.title);
    assert.equal(after.body.meta.version, `W/"${u.version}"`);
  });

  it('If-Match: * matches any existing resource, and a missing one stays 404', async () => {
    const scim = scimClient(app, (await buildTenant()).scimToken);
    const u = await userAtVersion(scim, 0);
    await scim.patch(`/Users/${u.id}`, title('star'), { 'If-Match': '*' }).expect(200);
    await scim.patch('/Users/does-not-exist', title('star'), { 'If-Match': '*' }).expect(404);
    await scim.delete(`/Users/${u.id}`, { 'If-Match': '*' }).expect(204);
  });

  it('a malformed If-Match or If-None-Match → 400 invalidSyntax, and nothing changes', async () => {
    const scim = scimClient(app, (await buildTenant()).scimToken);
    const u = await userAtVersion(scim, 0);
    for (const header of ['abc', '7', 'W/7', '"3" "4"', '"3", *', 'W/"a b"']) {
      const res = await scim.patch(`/Users/${u.id}`, title('bad'), { 'If-Match': header }).expect(400);
      assert.equal(res.body.scimType, 'invalidSyntax', header);
      assert.equal(
        (await scim.get(`/Users/${u.id}`, { 'If-None-Match': header }).expect(400)).body.scimType,
        'invalidSyntax',
        header,
      );
    }
    assert.equal((await scim.get(`/Users/${u.id}`).expect(200)).body.title, undefined);
  });

  it('If-None-Match: 304 on GET when any tag matches; 412 on a write when one matches or for *', async () => {
    const scim = scimClient(app, (await buildTenant()).scimToken);
    const u = await userAtVersion(scim, 1);
    await scim.get(`/Users/${u.id}`, { 'If-None-Match': `"x", "${u.version}"` }).expect(304);
    await scim.get(`/Users/${u.id}`, { 'If-None-Match': `"x", "${u.version + 1}"` }).expect(200);
    await scim.patch(`/Users/${u.id}`, title('no'), { 'If-None-Match': `W/"${u.version}"` }).expect(412);
    await scim.patch(`/Users/${u.id}`, title('no'), { 'If-None-Match': '*' }).expect(412);
    assert.equal((await scim.get(`/Users/${u.id}`).expect(200)).body.title, u.title);
    await scim.patch(`/Users/${u.id}`, title('yes'), { 'If-None-Match': `"${u.version - 1}"` }).expect(200);
  });

  it('Bulk version follows the same rules per operation', async () => {
    const scim = scimClient(app, (await buildTenant()).scimToken);
    const u = await userAtVersion(scim, 1);
    const op = (version: unknown) => ({ method: 'PATCH', path: `/Users/${u.id}`, version, data: title('bulk') });
    const res = await scim
      .post('/Bulk', { schemas: [BULK], Operations: [op('W/"abc"'), op('abc'), op(7), op(`"1", W/"${u.version}"`)] })
      .expect(200);
    const got = res.body.Operations.map((o: { status: string; response?: { scimType?: string } }) => [
      o.status,
      o.response?.scimType,
    ]);
    assert.deepEqual(got, [
      ['412', undefined],
      ['400', 'invalidSyntax'],
      ['400', 'invalidSyntax'],
      ['200', undefined],
    ]);
    assert.equal((await scim.get(`/Users/${u.id}`).expect(200)).body.title, 'bulk');
  });
});
