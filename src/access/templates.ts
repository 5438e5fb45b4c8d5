import type { Knex } from 'knex';
import { insertChunked } from '../db/batch.js';
import { Conflict, NotFound } from '../errors.js';
import { newId } from '../db/ids.js';
import { isUniqueViolation } from '../db/errors.js';
import { noRowChanged } from '../db/versioned.js';
import { parseJson, toBool, toMs } from '../db/rows.js';
import type { AreaSettings } from './levels.js';
import { builtinTemplates } from './templates-builtin.js';
import { uniqueKey } from '../directory/model/value-key.js';

export interface RoleTemplate {
  tenantId: string;
  id: string;
  name: string;
  areas: AreaSettings;
  builtin: boolean;
  version: number;
  createdAt: number;
  updatedAt: number;
}

type Row = Record<string, unknown>;

function templateFromRow(r: Row): RoleTemplate {
  return {
    tenantId: String(r.tenant_id),
    id: String(r.id),
    name: String(r.name),
    areas: parseJson<AreaSettings>(r.areas_json, {}),
    builtin: toBool(r.builtin),
    version: Number(r.version),
    createdAt: toMs(r.created_at)!,
    updatedAt: toMs(r.updated_at)!,
  };
}

/** Template names are unique per tenant regardless of case and Unicode form. */
function nameKey(name: string): string {
  return name.normalize('NFC').trim().toLowerCase();
}

function nameTaken(name: string, cause: unknown): Conflict {
  return new Conflict('template_name_taken', `a role template named "${name}" already exists`, { cause });
}

function notFound(id: string): NotFound {
  return new NotFound('template_not_found', `no role template with id "${id}"`);
}

/** Seeds seed 002's common configurations into a tenant; templates already there are kept. */
export async function seedBuiltinTemplates(trx: Knex, tenantId: string, now = Date.now()): Promise<void> {
  const existing = new Set(
    (await trx('role_templates').where({ tenant_id: tenantId }).select('name_key')).map((r) => String(r.name_key)),
  );
  const rows = builtinTemplates
    .filter((t) => !existing.has(nameKey(t.name)))
    .map((t) => ({
      tenant_id: tenantId,
      id: newId(),
      name: t.name,
      name_key: nameKey(t.name),
      areas_json: JSON.stringify(t.areas),
      builtin: true,
      version: 1,
      created_at: now,
      updated_at: now,
    }));
  await insertChunked(trx, 'role_templates', rows);
}

export async function listTemplates(db: Knex, tenantId: string): Promise<RoleTemplate[]> {
  return (await db('role_templates').where({ tenant_id: tenantId }).orderBy('name_key').orderBy('id')).map(
    templateFromRow,
  );
}

export async function getTemplate(db: Knex, tenantId: string, id: string): Promise<RoleTemplate | undefined> {
  const row = await db('role_templates').where({ tenant_id: tenantId, id }).first();
  return row ? templateFromRow(row) : undefined;
}

export async function requireTemplate(db: Knex, tenantId: string, id: string): Promise<RoleTemplate> {
  const t = await getTemplate(db, tenantId, id);
  if (!t) throw notFound(id);
  return t;
}

export async function insertTemplate(
  trx: Knex,
  tenantId: string,
  input: { name: string; areas: AreaSettings },
  now: number,
): Promise<RoleTemplate> {
  const row = {
    tenant_id: tenantId,
    id: newId(),
    name: input.name.trim(),
    name_key: uniqueKey('name', input.name, 200, nameKey),
    areas_json: JSON.stringify(input.areas),
    builtin: false,
    version: 1,
    created_at: now,
    updated_at: now,
  };
  try {
    await trx('role_templates').insert(row);
  } catch (err) {
    if (isUniqueViolation(err)) throw nameTaken(input.name, err);
    throw err;
  }
  return templateFromRow(row);
}

/** Locks a template for a change (version bump, so concurrent edits queue up). */
export async function lockTemplate(trx: Knex, tenantId: string, id: string, now: number): Promise<RoleTemplate> {
  const changed = await trx('role_templates')
    .where({ tenant_id: tenantId, id })
    .update({ version: trx.raw('version + 1'), updated_at: now });
  if (changed === 0)
    await noRowChanged(trx, 'role_templates', { tenant_id: tenantId, id }, undefined, notFound(id), 'role template');
  return (await getTemplate(trx, tenantId, id))!;
}

export async function writeTemplate(
  trx: Knex,
  locked: RoleTemplate,
  input: { name: string; areas: AreaSettings },
): Promise<RoleTemplate> {
  try {
    await trx('role_templates')
      .where({ tenant_id: locked.tenantId, id: locked.id })
      .update({
        name: input.name.trim(),
        name_key: uniqueKey('name', input.name, 200, nameKey),
        areas_json: JSON.stringify(input.areas),
      });
  } catch (err) {
    if (isUniqueViolation(err)) throw nameTaken(input.name, err);
    throw err;
  }
  return { ...locked, name: input.name.trim(), areas: input.areas };
}

export async function deleteTemplateRow(trx: Knex, tenantId: string, id: string): Promise<void> {
  await trx('role_templates').where({ tenant_id: tenantId, id }).delete();
}
