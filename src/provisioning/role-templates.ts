import type { Knex } from 'knex';
import type { Area } from '../access/catalogue.js';
import { checkInheritance } from '../access/effective.js';
import { indexCatalogue, type AreaSettings } from '../access/levels.js';
import { assertWithinOwn, wouldHold } from '../access/policies.js';
import { requireUserManager, type Principal } from '../access/principal.js';
import {
  deleteTemplateRow,
  insertTemplate,
  lockTemplate,
  requireTemplate,
  writeTemplate,
  type RoleTemplate,
} from '../access/templates.js';
import { getOwnSettingsOf, putOwnSettings } from '../access/user-settings.js';
import { recordEvent } from '../audit/record.js';
import type { Ctx } from '../context.js';
import type { Db } from '../db/knex.js';
import { Conflict, InvalidInput, NotFound, Unprocessable } from '../errors.js';

export interface TemplateInput {
  name: string;
  /** Already parsed against the catalogue. */
  areas: AreaSettings;
}

function entity(t: RoleTemplate) {
  return { type: 'role_template', id: t.id, name: t.name };
}

function checkInput(catalogue: Area[], p: Principal, input: TemplateInput, previous?: RoleTemplate): void {
  if (!input.name.trim())
    throw new InvalidInput('invalid_name', 'a role template needs a name', {
      fields: [{ path: 'body.name', message: 'must not be blank' }],
    });
  checkInheritance(catalogue, input.areas);
  assertWithinOwn(
    p,
    wouldHold(catalogue, {}, { areas: input.areas, id: '', name: input.name }),
    previous ? wouldHold(catalogue, {}, previous) : undefined,
  );
}

export async function createTemplate(
  db: Db,
  catalogue: Area[],
  ctx: Ctx,
  p: Principal,
  input: TemplateInput,
): Promise<RoleTemplate> {
  requireUserManager(p, catalogue, 'manage role templates');
  checkInput(catalogue, p, input);
  return db.tx(async (trx) => {
    const t = await insertTemplate(trx, ctx.tenantId, input, ctx.now.getTime());
    await recordEvent(trx, ctx, {
      event: 'template.created',
      entity: entity(t),
      before: null,
      after: { name: t.name, areas: t.areas },
    });
    return t;
  });
}

/** An edit reaches every referencing user at their next request: users hold a live reference. */
export async function updateTemplate(
  db: Db,
  catalogue: Area[],
  ctx: Ctx,
  p: Principal,
  id: string,
  input: TemplateInput,
): Promise<RoleTemplate> {
  requireUserManager(p, catalogue, 'manage role templates');
  return db.tx(async (trx) => {
    const locked = await lockTemplate(trx, ctx.tenantId, id, ctx.now.getTime());
    checkInput(catalogue, p, input, locked);
    const t = await writeTemplate(trx, locked, input);
    await recordEvent(trx, ctx, {
      event: 'template.updated',
      entity: entity(t),
      before: { name: locked.name, areas: locked.areas },
      after: { name: t.name, areas: t.areas },
    });
    return t;
  });
}

export interface TemplateUser {
  id: string;
  email: string | null;
}

async function usersOf(trx: Knex, tenantId: string, templateId: string): Promise<TemplateUser[]> {
  return (
    await trx('users').where({ tenant_id: tenantId, template_id: templateId }).select('id', 'email').orderBy('id')
  ).map((r) => ({
    id: String(r.id),
    email: (r.email as string | null) ?? null,
  }));
}

/** How many users a refusal to delete lists by name; the count says how many hold it in all. */
export const HOLDERS_SAMPLE = 20;

async function holdersSample(
  trx: Knex,
  tenantId: string,
  templateId: string,
): Promise<{ count: number; sample: TemplateUser[] }> {
  const count = Number(
    (await trx('users').where({ tenant_id: tenantId, template_id: templateId }).count({ n: '*' }).first())?.n ?? 0,
  );
  if (!count) return { count, sample: [] };
  const rows = await trx('users')
    .where({ tenant_id: tenantId, template_id: templateId })
    .select('id', 'email')
    .orderBy('id')
    .limit(HOLDERS_SAMPLE);
  return { count, sample: rows.map((r) => ({ id: String(r.id), email: (r.email as string | null) ?? null })) };
}

/**
 * The template's settings folded into a user's own, so that detaching changes nothing the user
 * holds: the template counts only where the user set nothing on the area or an ancestor.
 */
export function detachedSettings(catalogue: Area[], own: AreaSettings, template: AreaSettings): AreaSettings {
  const index = indexCatalogue(catalogue);
  const out: AreaSettings = { ...own };
  for (const [key, setting] of Object.entries(template)) {
    const entry = index.get(key);
    if (!entry) continue;
    let governed = Object.hasOwn(own, key);
    for (let up = entry.parent; up && !governed; up = index.get(up.key)?.parent ?? null)
      governed = Object.hasOwn(own, up.key);
    if (!governed) out[key] = setting;
  }
  return out;
}

/**
 * Deletes a template. While users reference it the answer is 409 with their count and the first
 * HOLDERS_SAMPLE of them, unless they are reassigned to another template or detached (the
 * template's settings copied onto each).
 */
export async function deleteTemplate(
  db: Db,
  catalogue: Area[],
  ctx: Ctx,
  p: Principal,
  id: string,
  opts: { reassign?: string; detach?: boolean },
): Promise<{ reassigned: number; detached: number }> {
  requireUserManager(p, catalogue, 'manage role templates');
  if (opts.reassign && opts.detach)
    throw new InvalidInput('conflicting_options', 'use either reassign or detach, not both');
  if (opts.reassign === id)
    throw new Unprocessable('reassign_to_self', 'cannot reassign users to the template being deleted');
  return db.tx(async (trx) => {
    const locked = await lockTemplate(trx, ctx.tenantId, id, ctx.now.getTime());
    if (!opts.reassign && !opts.detach) {
      const held = await holdersSample(trx, ctx.tenantId, id);
      if (held.count) {
        throw new Conflict(
          'template_in_use',
          `role template "${locked.name}" is used by ${held.count} user(s); reassign them (?reassign=<templateId>) or detach them (?detach=true)`,
          {
            details: { usersCount: held.count, users: held.sample },
          },
        );
      }
    }
    const users = await usersOf(trx, ctx.tenantId, id);
    let reassigned = 0;
    let detached = 0;
    if (users.length && opts.reassign) {
      const target = await requireTemplate(trx, ctx.tenantId, opts.reassign).catch((err: unknown) => {
        if (err instanceof NotFound)
          throw new Unprocessable('unknown_template', `no role template with id "${opts.reassign}" to reassign to`);
        throw err;
      });
      assertWithinOwn(p, wouldHold(catalogue, {}, target), wouldHold(catalogue, {}, locked));
      reassigned = await trx('users')
        .where({ tenant_id: ctx.tenantId, template_id: id })
        .update({ template_id: target.id, version: trx.raw('version + 1') });
    } else if (users.length && opts.detach) {
      const own = await getOwnSettingsOf(
        trx,
        ctx.tenantId,
        users.map((u) => u.id),
      );
      for (const u of users) {
        await putOwnSettings(
          trx,
          ctx.tenantId,
          u.id,
          detachedSettings(catalogue, own.get(u.id) ?? {}, locked.areas),
          ctx.now.getTime(),
        );
      }
      detached = await trx('users')
        .where({ tenant_id: ctx.tenantId, template_id: id })
        .update({ template_id: null, version: trx.raw('version + 1') });
    }
    await deleteTemplateRow(trx, ctx.tenantId, id);
    await recordEvent(trx, ctx, {
      event: 'template.deleted',
      entity: entity(locked),
      before: { name: locked.name, areas: locked.areas },
      after: null,
    });
    if (users.length) {
      await recordEvent(trx, ctx, {
        event: opts.reassign ? 'template.users_reassigned' : 'template.users_detached',
        entity: entity(locked),
        before: { users: users.map((u) => u.id) },
        after: opts.reassign ? { templateId: opts.reassign } : { templateId: null },
      });
    }
    return { reassigned, detached };
  });
}
