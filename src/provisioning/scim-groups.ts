import type { Knex } from 'knex';
import type { Ctx } from '../context.js';
import type { Db } from '../db/knex.js';
import { InvalidInput } from '../errors.js';
import { recordEvent } from '../audit/record.js';
import {
  applyMemberSteps,
  deleteGroup,
  insertGroup,
  lockGroupForChange,
  requireGroup,
  writeGroupDoc,
  type IdpGroup,
  type MemberDelta,
  type MemberRef,
  type MemberStep,
} from '../directory/groups.js';
import { usersUnderIdpGroups } from '../mapping/engine.js';
import { inMappingTx, requireExclusive } from '../mapping/lock.js';
import { checkGroupPatchSize, planGroupPatch } from '../scim/patch/group.js';
import { syncAfterDirectoryChange, usersAffectedByGroupChange } from './mapping.js';
import type { PatchOp } from '../scim/patch/parse.js';
import type { VersionCondition } from '../db/versioned.js';
import { normalizeResource, type ScimDoc } from '../directory/model/normalize.js';
import { GROUP_RT } from '../directory/model/registry.js';
import { inListChunks } from '../db/batch.js';

function entity(g: IdpGroup) {
  return { type: 'idp_group', id: g.id, name: g.displayName };
}

/** Members sent in a POST or PUT body, checked before anything is written. */
function membersOf(doc: ScimDoc): MemberRef[] | undefined {
  const list = doc.members as { value?: unknown; type?: unknown }[] | undefined;
  if (list === undefined) return undefined;
  return list.map((m, i) => {
    if (typeof m.value !== 'string' || m.value === '') {
      throw new InvalidInput('invalid_member', `members[${i}].value must be a member id`, { scimType: 'invalidValue' });
    }
    const type =
      typeof m.type === 'string'
        ? m.type.toLowerCase() === 'group'
          ? 'Group'
          : m.type.toLowerCase() === 'user'
            ? 'User'
            : undefined
        : undefined;
    return { value: m.value, ...(type ? { type } : {}) };
  });
}

/** Whether any removed member is a group (the rest are users). */
async function removesGroups(trx: Knex, tenantId: string, removed: string[]): Promise<boolean> {
  for (const part of inListChunks(trx, removed)) {
    if (await trx('idp_groups').where({ tenant_id: tenantId }).whereIn('id', part).first('id')) return true;
  }
  return false;
}

function withoutMembers(doc: ScimDoc): ScimDoc {
  const { members: _m, ...rest } = doc;
  return rest;
}

/** One event per write, named for what happened; members as the ids added and removed. */
function changeEvent(before: IdpGroup, after: IdpGroup, delta: MemberDelta) {
  const renamed = before.displayName !== after.displayName || before.externalId !== after.externalId;
  const event =
    renamed || (delta.added.length && delta.removed.length) || (!delta.added.length && !delta.removed.length)
      ? 'scim.group.updated'
      : delta.added.length
        ? 'scim.group.members_added'
        : 'scim.group.members_removed';
  return {
    event,
    entity: entity(after),
    before: {
      displayName: before.displayName,
      externalId: before.externalId,
      ...(delta.removed.length ? { membersRemoved: delta.removed } : {}),
    },
    after: {
      displayName: after.displayName,
      externalId: after.externalId,
      ...(delta.added.length ? { membersAdded: delta.added.map((m) => m.id) } : {}),
    },
  };
}

export async function createScimGroup(db: Db, ctx: Ctx, body: unknown): Promise<IdpGroup> {
  const { doc } = normalizeResource(GROUP_RT, body);
  const members = membersOf(doc) ?? [];
  return inMappingTx(db, ctx.tenantId, 'share', async (trx, mode) => {
    const now = ctx.now.getTime();
    const group = await insertGroup(trx, ctx.tenantId, withoutMembers(doc), 'scim', now);
    const delta = members.length
      ? await applyMemberSteps(trx, ctx.tenantId, group.id, [{ kind: 'add', members }], now)
      : { added: [], removed: [] };
    // Groups nested in the new one change the IdP group closure of their users (src/mapping/lock.ts).
    if (delta.added.some((m) => m.type === 'Group')) requireExclusive(trx, mode);
    await syncAfterDirectoryChange(
      trx,
      ctx,
      await usersAffectedByGroupChange(trx, ctx.tenantId, group.id, delta, false),
    );
    await recordEvent(trx, ctx, {
      event: 'scim.group.created',
      entity: entity(group),
      before: null,
      after: {
        displayName: group.displayName,
        externalId: group.externalId,
        membersAdded: delta.added.map((m) => m.id),
      },
    });
    return group;
  });
}

async function change(
  db: Db,
  ctx: Ctx,
  id: string,
  expected: VersionCondition | undefined,
  plan: (current: IdpGroup) => { doc: ScimDoc; memberSteps: MemberStep[] },
): Promise<{ group: IdpGroup; delta: MemberDelta }> {
  return inMappingTx(db, ctx.tenantId, 'share', async (trx, mode) => {
    const now = ctx.now.getTime();
    const locked = await lockGroupForChange(trx, ctx.tenantId, id, now, expected);
    const { doc, memberSteps } = plan(locked);
    const next = withoutMembers(doc);
    const group = JSON.stringify(next) === JSON.stringify(locked.doc) ? locked : await writeGroupDoc(trx, locked, next);
    const delta = await applyMemberSteps(trx, ctx.tenantId, id, memberSteps, now);
    // A rename may make rules on displayName or externalId start or stop matching.
    const renamed = locked.displayName !== group.displayName || locked.externalId !== group.externalId;
    // Nesting and renames change which IdP groups other users are under (src/mapping/lock.ts).
    if (
      renamed ||
      delta.added.some((m) => m.type === 'Group') ||
      (await removesGroups(trx, ctx.tenantId, delta.removed))
    )
      requireExclusive(trx, mode);
    await recordEvent(trx, ctx, changeEvent(locked, group, delta));
    await syncAfterDirectoryChange(trx, ctx, await usersAffectedByGroupChange(trx, ctx.tenantId, id, delta, renamed));
    return { group, delta };
  });
}

export function patchScimGroup(db: Db, ctx: Ctx, id: string, ops: PatchOp[], expected?: VersionCondition) {
  checkGroupPatchSize(ops);
  return change(db, ctx, id, expected, (current) => planGroupPatch(ops, { id, doc: current.doc }));
}

/** PUT: the member list is the new membership, applied as a difference. */
export function replaceScimGroup(db: Db, ctx: Ctx, id: string, body: unknown, expected?: VersionCondition) {
  const { doc, readOnlySeen } = normalizeResource(GROUP_RT, body);
  if (typeof readOnlySeen.id === 'string' && readOnlySeen.id !== id) {
    throw new InvalidInput('mutability', `id is read-only: the body says "${readOnlySeen.id}" for group "${id}"`, {
      scimType: 'mutability',
    });
  }
  const members = membersOf(doc) ?? [];
  return change(db, ctx, id, expected, () => ({ doc, memberSteps: [{ kind: 'replaceAll', members }] }));
}

export async function deleteScimGroup(db: Db, ctx: Ctx, id: string, expected?: VersionCondition): Promise<void> {
  await inMappingTx(db, ctx.tenantId, 'exclusive', async (trx) => {
    const group = await requireGroup(trx, ctx.tenantId, id);
    const reached = await usersUnderIdpGroups(trx, ctx.tenantId, [id]);
    await deleteGroup(trx, ctx.tenantId, id, expected);
    await syncAfterDirectoryChange(trx, ctx, reached);
    await recordEvent(trx, ctx, {
      event: 'scim.group.deleted',
      entity: entity(group),
      before: { displayName: group.displayName, externalId: group.externalId },
      after: null,
    });
  });
}
