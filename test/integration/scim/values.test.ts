import assert from 'node:assert/strict';
import request from 'supertest';
import { useApp, useTenant } from '../../support/harness.js';
import { ENTERPRISE, GROUP, patchBody, scimClient, USER } from '../../support/scim.js';

const user = (userName: string, extra: Record<string, unknown> = {}) => ({ schemas: [USER], userName, ...extra });
const emails = (n: number, from = 0) =>
  Array.from({ length: n }, (_, i) => ({ value: `u${from + i}@example.com`, type: 'work' }));

type Scim = ReturnType<typeof scimClient>;

/** A 400 invalidValue whose detail names what was wrong: IdP admins read it in their provisioning logs. */
function refused(res: request.Response, ...named: (string | RegExp)[]): void {
  assert.equal(res.status, 400, JSON.stringify(res.body));
  assert.equal(res.body.scimType, 'invalidValue', res.body.detail);
  for (const n of named)
    assert.match(res.body.detail, typeof n === 'string' ? new RegExp(n.replace(/[.[\]]/g, '\\$&')) : n);
}

async function read(scim: Scim, path: string) {
  return (await scim.get(path).expect(200)).body;
}

describe('SCIM values: types, lengths and caps', () => {
  const app = useApp();
  const t = useTenant();
  let scim: Scim;
  beforeEach(async () => {
    scim = scimClient(app, t.scimToken);
  });

  describe('types (no silent coercion)', () => {
    it('refuses a number, a boolean or an object where a string is defined, naming the attribute', async () => {
      refused(await scim.post('/Users', user('x', { userName: 12345 })), 'userName', '12345');
      refused(await scim.post('/Users', user('x', { userName: true })), 'userName');
      refused(await scim.post('/Users', user('x@example.com', { name: { givenName: 7 } })), 'name.givenName');
      refused(await scim.post('/Users', user('x@example.com', { title: { text: 'CTO' } })), 'title', 'an object');
      refused(await scim.post('/Users', user('x@example.com', { displayName: ['X'] })), 'displayName', 'an array');
      refused(
        await scim.post('/Users', user('x@example.com', { [ENTERPRISE]: { employeeNumber: 42 } })),
        'employeeNumber',
      );
      refused(await scim.post('/Users', user('x@example.com', { externalId: 99 })), 'externalId');
      refused(await scim.post('/Groups', { schemas: [GROUP], displayName: 5 }), 'displayName');
      assert.equal((await read(scim, '/Users')).totalResults, 0, 'nothing was created');
      assert.equal((await read(scim, '/Groups')).totalResults, 0, 'nothing was created');
    });

    it('refuses a scalar where a complex or multi-valued attribute is defined', async () => {
      refused(await scim.post('/Users', user('x@example.com', { emails: 'a@b.c' })), 'emails', 'list');
      refused(await scim.post('/Users', user('x@example.com', { emails: ['a@b.c'] })), 'emails[0]', 'object');
      refused(await scim.post('/Users', user('x@example.com', { phoneNumbers: 5551234 })), 'phoneNumbers');
      refused(await scim.post('/Users', user('x@example.com', { name: 'Ada Lovelace' })), 'name');
      refused(
        await scim.post('/Users', user('x@example.com', { emails: [{ value: 'a@b.c', type: 3 }] })),
        'emails[0].type',
      );
      assert.equal((await read(scim, '/Users')).totalResults, 0);
    });

    it('checks PUT and PATCH values the same way, and a refused request changes nothing', async () => {
      const u = (
        await scim
          .post('/Users', user('ada@example.com', { name: { givenName: 'Ada' }, title: 'Countess' }))
          .expect(201)
      ).body;
      const before = await read(scim, `/Users/${u.id}`);
      refused(await scim.put(`/Users/${u.id}`, user('ada@example.com', { emails: 'ada@example.com' })), 'emails');
      refused(
        await scim.patch(`/Users/${u.id}`, patchBody({ op: 'replace', path: 'userName', value: 12345 })),
        'userName',
      );
      refused(
        await scim.patch(`/Users/${u.id}`, patchBody({ op: 'replace', path: 'name.givenName', value: 7 })),
        'name.givenName',
      );
      refused(await scim.patch(`/Users/${u.id}`, patchBody({ op: 'replace', value: { title: false } })), 'title');
      refused(
        await scim.patch(`/Users/${u.id}`, patchBody({ op: 'add', path: 'emails', value: 'ada@example.com' })),
        'emails',
      );
      refused(
        await scim.patch(`/Users/${u.id}`, patchBody({ op: 'replace', path: 'title', value: ['Countess'] })),
        'title',
      );
      refused(
        await scim.patch(
          `/Users/${u.id}`,
          patchBody({ op: 'replace', path: 'emails[type eq "work"].value', value: 1 }),
        ),
        'value',
      );
      assert.deepEqual(await read(scim, `/Users/${u.id}`), before);
    });

    it('keeps the documented Entra tolerances: booleans as strings, a bare manager id, a bare member id', async () => {
      const boss = (await scim.post('/Users', user('boss@example.com')).expect(201)).body;
      const u = (await scim.post('/Users', user('e@example.com', { active: 'True' })).expect(201)).body;
      assert.equal(u.active, true);
      await scim
        .patch(
          `/Users/${u.id}`,
          patchBody(
            { op: 'Replace', path: 'active', value: 'False' },
            { op: 'Add', path: `${ENTERPRISE}:manager`, value: boss.id },
          ),
        )
        .expect(200);
      const after = await read(scim, `/Users/${u.id}`);
      assert.equal(after.active, false);
      assert.equal(after[ENTERPRISE].manager.value, boss.id);
      const g = (await scim.post('/Groups', { schemas: [GROUP], displayName: 'G' }).expect(201)).body;
      await scim.patch(`/Groups/${g.id}`, patchBody({ op: 'add', path: 'members', value: boss.id })).expect(204);
    });
  });

  describe('lengths (the same 400 on every database)', () => {
    const longI = 'İ'.repeat(255);

    it('measures userName and group displayName keys after case mapping ("İ" maps to two characters)', async () => {
      refused(await scim.post('/Users', user(longI)), 'userName', '255');
      refused(await scim.post('/Users', user('a'.repeat(256))), 'userName', '255');
      refused(await scim.post('/Groups', { schemas: [GROUP], displayName: longI }), 'displayName', '255');
      await scim.post('/Users', user('İ'.repeat(127))).expect(201);
      // Characters are code points, as the database counts them: 200 emoji are 400 UTF-16 units.
      const emoji = (await scim.post('/Users', user('😀'.repeat(200))).expect(201)).body;
      assert.equal(emoji.userName, '😀'.repeat(200));
      const a = (await scim.post('/Users', user('a'.repeat(255))).expect(201)).body;
      refused(
        await scim.patch(`/Users/${a.id}`, patchBody({ op: 'replace', path: 'userName', value: longI })),
        'userName',
      );
      const g = (await scim.post('/Groups', { schemas: [GROUP], displayName: 'g' }).expect(201)).body;
      refused(
        await scim.patch(`/Groups/${g.id}`, patchBody({ op: 'replace', path: 'displayName', value: longI })),
        'displayName',
      );
      assert.equal((await read(scim, `/Groups/${g.id}`)).displayName, 'g');
    });

    it('refuses an externalId over 255 characters on users and groups', async () => {
      const long = 'x'.repeat(256);
      refused(await scim.post('/Users', user('ext@example.com', { externalId: long })), 'externalId', '255');
      refused(
        await scim.post('/Groups', { schemas: [GROUP], displayName: 'G', externalId: long }),
        'externalId',
        '255',
      );
      const u = (await scim.post('/Users', user('ext@example.com', { externalId: 'x'.repeat(255) })).expect(201)).body;
      refused(
        await scim.patch(`/Users/${u.id}`, patchBody({ op: 'replace', path: 'externalId', value: long })),
        'externalId',
      );
      refused(await scim.put(`/Users/${u.id}`, user('ext@example.com', { externalId: long })), 'externalId');
      assert.equal((await read(scim, `/Users/${u.id}`)).externalId, 'x'.repeat(255));
    });

    it('caps every other string: 1024 characters, references 2048, an email 320', async () => {
      await scim.post('/Users', user('s@example.com', { title: 't'.repeat(1024) })).expect(201);
      refused(await scim.post('/Users', user('s2@example.com', { title: 't'.repeat(1025) })), 'title', '1024');
      refused(
        await scim.post('/Users', user('s2@example.com', { addresses: [{ locality: 'l'.repeat(1025) }] })),
        'addresses[0].locality',
      );
      refused(
        await scim.post('/Users', user('s2@example.com', { [ENTERPRISE]: { department: 'd'.repeat(1025) } })),
        'department',
      );
      refused(
        await scim.post('/Users', user('s2@example.com', { profileUrl: `https://x.io/${'p'.repeat(2048)}` })),
        'profileUrl',
        '2048',
      );
      refused(
        await scim.post('/Users', user('s2@example.com', { emails: [{ value: `${'e'.repeat(310)}@example.com` }] })),
        'emails[0].value',
        '320',
      );
    });

    it('measures role-template and SSO-connection name keys after case mapping too', async () => {
      const name = 'İ'.repeat(200);
      const tpl = await request(app).post('/api/v1/role-templates').set(t.admin).send({ name, areas: {} });
      assert.equal(tpl.status, 400, JSON.stringify(tpl.body));
      assert.match(JSON.stringify(tpl.body), /name/);
      const conn = await request(app).post('/api/v1/sso-connections').set(t.admin).send({
        protocol: 'oidc',
        name,
        issuer: 'https://acme.okta.com',
        clientId: '0oa123',
        clientSecret: 'very-secret-client-secret',
      });
      assert.equal(conn.status, 400, JSON.stringify(conn.body));
      assert.match(JSON.stringify(conn.body), /name/);
    });
  });

  describe('values per multi-valued attribute', () => {
    it('accepts 100 values and refuses 101 on POST, PUT and PATCH, naming the attribute and the cap', async () => {
      const u = (await scim.post('/Users', user('cap@example.com', { emails: emails(100) })).expect(201)).body;
      assert.equal(u.emails.length, 100);
      refused(await scim.post('/Users', user('cap2@example.com', { emails: emails(101) })), 'emails', '101', '100');
      refused(
        await scim.post('/Users', user('cap2@example.com', { roles: emails(101).map((e) => ({ value: e.value })) })),
        'roles',
        '100',
      );
      refused(
        await scim.put(`/Users/${u.id}`, user('cap@example.com', { phoneNumbers: emails(101) })),
        'phoneNumbers',
        '100',
      );
      refused(
        await scim.patch(`/Users/${u.id}`, patchBody({ op: 'replace', path: 'addresses', value: emails(101) })),
        'addresses',
        '100',
      );
      refused(
        await scim.patch(`/Users/${u.id}`, patchBody({ op: 'replace', value: { ims: emails(101) } })),
        'ims',
        '100',
      );
      assert.equal((await read(scim, `/Users/${u.id}`)).emails.length, 100);
    });

    it('refuses an add that takes the stored list past the cap, and keeps a duplicate value once', async () => {
      const u = (await scim.post('/Users', user('grow@example.com', { emails: emails(60) })).expect(201)).body;
      refused(
        await scim.patch(`/Users/${u.id}`, patchBody({ op: 'add', path: 'emails', value: emails(60, 60) })),
        'emails',
        '120',
        '100',
      );
      assert.equal((await read(scim, `/Users/${u.id}`)).emails.length, 60, 'nothing was added');
      const again = await scim
        .patch(`/Users/${u.id}`, patchBody({ op: 'add', path: 'emails', value: emails(50, 20) }))
        .expect(200);
      assert.equal(again.body.emails.length, 70, '30 of the 50 were already there');
      const removed = await scim
        .patch(
          `/Users/${u.id}`,
          patchBody({ op: 'remove', path: 'emails', value: emails(40).map((e) => ({ value: e.value.toUpperCase() })) }),
        )
        .expect(200);
      assert.deepEqual(
        removed.body.emails.map((e: { value: string }) => e.value),
        emails(30, 40).map((e) => e.value),
        'listed values are removed, compared case-insensitively',
      );
    });

    it('answers a 1 MiB PATCH of distinct values with 400 at once, and a 1 MiB PATCH of many small lists in time', async () => {
      const u = (await scim.post('/Users', user('big@example.com')).expect(201)).body;
      const values: { value: string }[] = [];
      let size = 0;
      for (let i = 0; size < 1024 * 1024 - 200; i++) {
        const v = { value: `a${i}` };
        values.push(v);
        size += JSON.stringify(v).length + 1;
      }
      const one = JSON.stringify(patchBody({ op: 'add', path: 'emails', value: values }));
      assert.ok(one.length <= 1024 * 1024, `${one.length} bytes`);
      let started = performance.now();
      const res = await scim.patch(`/Users/${u.id}`, JSON.parse(one));
      const single = performance.now() - started;
      refused(res, 'emails', String(values.length), '100');
      // Within the cap per operation, a request spreads its values over many operations.
      const ops = [];
      for (let i = 0; JSON.stringify(ops).length < 1024 * 1024 - 20000; i++)
        ops.push({ op: 'replace', path: 'emails', value: emails(100, i * 100) });
      started = performance.now();
      const many = await scim.patch(`/Users/${u.id}`, patchBody(...ops)).expect(200);
      const spread = performance.now() - started;
      assert.equal(many.body.emails.length, 100);
      console.log(
        `      1 MiB PATCH: ${values.length} values in one add → 400 in ${single.toFixed(0)} ms; ${ops.length} replace operations of 100 emails → 200 in ${spread.toFixed(0)} ms`,
      );
      // Generous bounds, so a busy CI machine does not flake; the README states the measured times.
      assert.ok(single < 2000, `${single} ms`);
      assert.ok(spread < 5000, `${spread} ms`);
    });
  });

  describe('a PATCH whose path is an extension URN (RFC 7644 §3.5.2, §3.10)', () => {
    it('adds, replaces and removes the extension attributes', async () => {
      const boss = (await scim.post('/Users', user('boss@example.com')).expect(201)).body;
      const u = (await scim.post('/Users', user('ext-path@example.com')).expect(201)).body;
      const added = await scim
        .patch(
          `/Users/${u.id}`,
          patchBody({ op: 'add', path: ENTERPRISE, value: { department: 'R&D', manager: { value: boss.id } } }),
        )
        .expect(200);
      assert.equal(added.body[ENTERPRISE].department, 'R&D');
      assert.equal(added.body[ENTERPRISE].manager.value, boss.id);
      const replaced = await scim
        .patch(
          `/Users/${u.id}`,
          patchBody({ op: 'replace', path: ENTERPRISE.toLowerCase(), value: { department: 'Ops', costCenter: '42' } }),
        )
        .expect(200);
      assert.equal(replaced.body[ENTERPRISE].department, 'Ops');
      assert.equal(replaced.body[ENTERPRISE].costCenter, '42');
      assert.equal(replaced.body[ENTERPRISE].manager.value, boss.id, 'attributes not named are kept');
      const filtered = await scim
        .get(`/Users?filter=${encodeURIComponent(`${ENTERPRISE}:department eq "ops"`)}`)
        .expect(200);
      assert.equal(filtered.body.totalResults, 1);
      const removed = await scim.patch(`/Users/${u.id}`, patchBody({ op: 'remove', path: ENTERPRISE })).expect(200);
      assert.equal(removed.body[ENTERPRISE], undefined);
      assert.equal((await read(scim, `/Users/${u.id}`))[ENTERPRISE], undefined);
      assert.equal(
        (await scim.get(`/Users?filter=${encodeURIComponent(`${ENTERPRISE}:department eq "ops"`)}`).expect(200)).body
          .totalResults,
        0,
      );
    });

    it('refuses a value that is not an object of the extension attributes, or of the wrong types', async () => {
      const u = (
        await scim.post('/Users', user('ext-bad@example.com', { [ENTERPRISE]: { department: 'R&D' } })).expect(201)
      ).body;
      refused(await scim.patch(`/Users/${u.id}`, patchBody({ op: 'add', path: ENTERPRISE, value: 'R&D' })), ENTERPRISE);
      refused(
        await scim.patch(`/Users/${u.id}`, patchBody({ op: 'replace', path: ENTERPRISE, value: { department: 7 } })),
        'department',
      );
      assert.equal((await read(scim, `/Users/${u.id}`))[ENTERPRISE].department, 'R&D');
    });
  });
});
