import assert from 'node:assert/strict';
import request from 'supertest';
import { testApp } from '../../support/app.js';
import { dialectName, testDb } from '../../support/db.js';
import { buildTenant } from '../../support/factories.js';

type Schema = Record<string, unknown>;

/** Request fields written as they are to a column: their maxLength must fit the column. */
const STORED: Record<string, string> = {
  'POST /groups body.name': 'local_groups.name',
  'POST /groups body.description': 'local_groups.description',
  'PATCH /groups/{id} body.name': 'local_groups.name',
  'PATCH /groups/{id} body.description': 'local_groups.description',
  'POST /agents body.name': 'agents.name',
  'POST /agents body.description': 'agents.description',
  'PATCH /agents/{id} body.name': 'agents.name',
  'PATCH /agents/{id} body.description': 'agents.description',
  'POST /agents/{id}/data-sources body.name': 'agent_data_sources.name',
  'PATCH /agents/{id}/data-sources/{dsId} body.name': 'agent_data_sources.name',
  'POST /agents/{id}/grants body.startDate': 'agent_grants.start_date',
  'POST /agents/{id}/grants body.endDate': 'agent_grants.end_date',
  'POST /agents/{id}/grants body.timeZone': 'agent_grants.time_zone',
  'PATCH /agents/{id}/grants/{grantId} body.startDate': 'agent_grants.start_date',
  'PATCH /agents/{id}/grants/{grantId} body.endDate': 'agent_grants.end_date',
  'PATCH /agents/{id}/grants/{grantId} body.timeZone': 'agent_grants.time_zone',
  'POST /api-keys body.name': 'api_tokens.name',
  'POST /invitations body.email': 'users.email',
  'PATCH /users/{id} body.email': 'users.email',
  'POST /role-templates body.name': 'role_templates.name',
  'PUT /role-templates/{id} body.name': 'role_templates.name',
  'POST /mapping-rules body.name': 'mapping_rules.name',
  'POST /mapping-rules body.description': 'mapping_rules.description',
  'POST /mapping-rules body.match.value': 'mapping_rules.match_value',
  'PATCH /mapping-rules/{id} body.name': 'mapping_rules.name',
  'PATCH /mapping-rules/{id} body.description': 'mapping_rules.description',
  'PATCH /mapping-rules/{id} body.match.value': 'mapping_rules.match_value',
  'POST /sso-connections body.name': 'sso_connections.name',
  'PATCH /sso-connections/{id} body.name': 'sso_connections.name',
  'PATCH /tenant body.timeZone': 'tenants.time_zone',
};

/** Declared length of a VARCHAR column, from the database itself. */
async function columnLength(table: string, column: string): Promise<number> {
  const knex = (await testDb()).knex;
  if (dialectName === 'mysql') {
    const [rows] = await knex.raw(
      'SELECT CHARACTER_MAXIMUM_LENGTH AS n FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ? AND column_name = ?',
      [table, column],
    );
    return Number(rows[0].n);
  }
  const info = (await knex.raw(`PRAGMA table_info(${table})`)) as { name: string; type: string }[];
  return Number(/\((\d+)\)/.exec(info.find((c) => c.name === column)!.type)![1]);
}

/** Every string schema of a request (body and query), with a path naming where it sits. */
function strings(
  node: unknown,
  at: string,
  components: Record<string, Schema>,
  out: { at: string; schema: Schema }[],
  seen = new Set<string>(),
): void {
  if (!node || typeof node !== 'object') return;
  const s = node as Schema;
  if (typeof s.$ref === 'string') {
    const name = s.$ref.replace('#/components/schemas/', '');
    if (seen.has(name)) return;
    strings(components[name], at, components, out, new Set([...seen, name]));
    return;
  }
  const types = Array.isArray(s.type) ? s.type : [s.type];
  if (types.includes('string') && s.enum === undefined && s.const === undefined) out.push({ at, schema: s });
  for (const [k, v] of Object.entries((s.properties as Record<string, unknown>) ?? {}))
    strings(v, `${at}.${k}`, components, out, seen);
  if (s.items) strings(s.items, `${at}[]`, components, out, seen);
  if (s.additionalProperties && typeof s.additionalProperties === 'object')
    strings(s.additionalProperties, `${at}.*`, components, out, seen);
  for (const key of ['oneOf', 'anyOf', 'allOf'])
    for (const [i, v] of ((s[key] as unknown[]) ?? []).entries())
      strings(v, `${at}(${key}${i})`, components, out, seen);
}

describe('management API: every string a request carries has a maximum length', () => {
  it('the OpenAPI document gives each string field of every request a maxLength', async () => {
    const app = await testApp();
    const doc = (await request(app).get('/api/v1/openapi.json').expect(200)).body;
    const components = doc.components.schemas as Record<string, Schema>;
    const found: { at: string; schema: Schema }[] = [];
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, Schema>>)) {
      for (const [method, op] of Object.entries(ops)) {
        const where = `${method.toUpperCase()} ${path}`;
        const body = (op.requestBody as { content?: Record<string, { schema?: unknown }> } | undefined)?.content?.[
          'application/json'
        ]?.schema;
        if (body) strings(body, `${where} body`, components, found);
        for (const p of (op.parameters as { name: string; in: string; schema: unknown }[]) ?? []) {
          if (p.in === 'query') strings(p.schema, `${where} query.${p.name}`, components, found);
        }
      }
    }
    assert.ok(found.length > 50, `only ${found.length} string fields found: the walk is broken`);
    // No exceptions: fields that are never stored (dates to evaluate at, durations) are bounded too.
    const missing = found.filter((f) => typeof f.schema.maxLength !== 'number').map((f) => f.at);
    assert.deepEqual(missing, []);

    const byPath = new Map(found.map((f) => [f.at, f.schema]));
    const tooLong: string[] = [];
    for (const [at, col] of Object.entries(STORED)) {
      const schema = byPath.get(at);
      assert.ok(schema, `${at} is not a request field any more`);
      const [table, column] = col.split('.') as [string, string];
      const n = await columnLength(table, column);
      if ((schema.maxLength as number) > n) tooLong.push(`${at}: maxLength ${String(schema.maxLength)} > ${col} ${n}`);
    }
    assert.deepEqual(tooLong, []);
  });

  it('a role template name whose lower-case form outgrows its key column is a 400 naming it on every dialect', async () => {
    const app = await testApp();
    const t = await buildTenant();
    // 200 characters, within maxLength, but "İ" lower-cases to two: 400 in the 200-character key.
    const res = await request(app)
      .post('/api/v1/role-templates')
      .set(t.admin)
      .send({ name: 'İ'.repeat(200), areas: {} });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.match(res.body.detail, /^name /);
    await request(app)
      .post('/api/v1/role-templates')
      .set(t.admin)
      .send({ name: 'İ'.repeat(100), areas: {} })
      .expect(201);
  });
});
