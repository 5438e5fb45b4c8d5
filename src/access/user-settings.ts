import type { Knex } from 'knex';
import { inChunks } from '../db/batch.js';
import { parseJson } from '../db/rows.js';
import type { AreaSettings } from './levels.js';

/** A user's own area settings (what the user was given directly, apart from any template). */
export async function getOwnSettings(db: Knex, tenantId: string, userId: string): Promise<AreaSettings> {
  const row = await db('user_area_settings').where({ tenant_id: tenantId, user_id: userId }).first();
  return row ? parseJson<AreaSettings>(row.areas_json, {}) : {};
}

export async function getOwnSettingsOf(
  db: Knex,
  tenantId: string,
  userIds: string[],
): Promise<Map<string, AreaSettings>> {
  const out = new Map<string, AreaSettings>();
  for (const r of await inChunks(db, userIds, (part) =>
    db('user_area_settings').where({ tenant_id: tenantId }).whereIn('user_id', part),
  )) {
    out.set(String(r.user_id), parseJson<AreaSettings>(r.areas_json, {}));
  }
  return out;
}

/** Replaces a user's own settings; an empty map removes the row. */
export async function putOwnSettings(
  trx: Knex,
  tenantId: string,
  userId: string,
  areas: AreaSettings,
  now: number,
): Promise<void> {
  await trx('user_area_settings').where({ tenant_id: tenantId, user_id: userId }).delete();
  if (Object.keys(areas).length) {
    await trx('user_area_settings').insert({
      tenant_id: tenantId,
      user_id: userId,
      areas_json: JSON.stringify(areas),
      updated_at: now,
    });
  }
}
