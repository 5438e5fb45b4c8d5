import type { Knex } from 'knex';
import { recordEvent } from '../audit/record.js';
import { unbind, unbindConnection } from '../connections/bindings.js';
import { certificateInfo } from '../connections/certificates.js';
import {
  assertDomainsWhereShared,
  assertNoSharedRules,
  deleteConnection,
  insertConnection,
  lockConnection,
  writeConnection,
  type Connection,
  type ConnectionInput,
} from '../connections/connections.js';
import type { Ctx } from '../context.js';
import { inChunks } from '../db/batch.js';
import type { Db } from '../db/knex.js';
import { requireUser } from '../directory/users.js';
import { lockMapping } from '../mapping/lock.js';
import { syncAfterDirectoryChange } from './mapping.js';
import { endConnectionSessions } from './sessions.js';

/**
 * Commands on SSO connections and sign-in bindings. Connections decide what rules match (claim
 * groups, protocol-wide sources), so each connection change takes the mapping lock first,
 * exclusive, as a rule change does (src/mapping/lock.ts).
 */

/** Who issues the subjects a connection binds: the OIDC issuer and client, or the SAML IdP's entity id. */
function idpIdentity(c: Connection): string {
  return c.protocol === 'oidc' ? JSON.stringify([c.oidc.issuer, c.oidc.clientId]) : c.saml.idpEntityId;
}

/** What the audit log keeps of a connection: its settings, never the secret or whole certificates. */
function audited(c: Connection) {
  if (c.protocol === 'oidc')
    return { name: c.name, enabled: c.enabled, matchBy: c.matchBy, domains: c.domains, ...c.oidc };
  const { idpCertificates, ...saml } = c.saml;
  return {
    name: c.name,
    enabled: c.enabled,
    matchBy: c.matchBy,
    domains: c.domains,
    ...saml,
    idpCertificates: idpCertificates.map((p) => certificateInfo(p).fingerprintSha256),
  };
}

const entity = (c: Connection) => ({ type: 'sso_connection', id: c.id, name: c.name });

export async function createSsoConnection(db: Db, ctx: Ctx, input: ConnectionInput): Promise<Connection> {
  return db.tx(async (trx) => {
    await lockMapping(trx, ctx.tenantId, 'exclusive');
    const created = await insertConnection(trx, ctx.tenantId, input, ctx.now.getTime());
    if (created.enabled) {
      await assertDomainsWhereShared(trx, ctx.tenantId);
      await assertNoSharedRules(trx, ctx.tenantId, created);
    }
    await recordEvent(trx, ctx, {
      event: 'sso_connection.created',
      entity: entity(created),
      before: null,
      after: audited(created),
    });
    return created;
  });
}

/** Merges the change over the connection; disabling it ends the sessions signed in through it. */
export async function updateSsoConnection(
  db: Db,
  ctx: Ctx,
  id: string,
  change: Omit<ConnectionInput, 'protocol'>,
): Promise<Connection> {
  return db.tx(async (trx) => {
    await lockMapping(trx, ctx.tenantId, 'exclusive');
    const locked = await lockConnection(trx, ctx.tenantId, id, ctx.now.getTime());
    const updated = await writeConnection(trx, locked, change);
    // Only what widens a trust space is refused: enabling, or emptying the domains. Adding
    // domains to one of several connections that lack them (migration 009) must pass.
    const widens = !locked.enabled || (locked.domains.length > 0 && !updated.domains.length);
    const domainsChanged = JSON.stringify(locked.domains) !== JSON.stringify(updated.domains);
    if (updated.enabled && (widens || domainsChanged))
      await assertDomainsWhereShared(trx, ctx.tenantId, { onlyOverlaps: !widens });
    if (updated.enabled && !locked.enabled) await assertNoSharedRules(trx, ctx.tenantId, updated);
    const sessionsEnded =
      locked.enabled && !updated.enabled ? await endConnectionSessions(trx, ctx.tenantId, updated.id) : 0;
    // A subject means something only at the IdP that issued it: another IdP's `sub` or
    // NameID could equal it and sign in as the bound user, so the bindings go.
    const bindingsRemoved =
      idpIdentity(locked) !== idpIdentity(updated) ? await unbindConnection(trx, ctx.tenantId, updated.id) : 0;
    await recordEvent(trx, ctx, {
      event: 'sso_connection.updated',
      entity: entity(updated),
      before: audited(locked),
      after: {
        ...audited(updated),
        ...(change.clientSecret !== undefined ? { clientSecretChanged: true } : {}),
        ...(sessionsEnded ? { sessionsEnded } : {}),
        ...(bindingsRemoved ? { bindingsRemoved } : {}),
      },
    });
    return updated;
  });
}

/** Removes a connection, the sessions signed in through it and its claim groups. */
export async function deleteSsoConnection(db: Db, ctx: Ctx, id: string): Promise<void> {
  await db.tx(async (trx) => {
    await lockMapping(trx, ctx.tenantId, 'exclusive');
    const c = await lockConnection(trx, ctx.tenantId, id, ctx.now.getTime());
    await endConnectionSessions(trx, ctx.tenantId, c.id);
    const claimGroups = await removeClaimGroups(trx, ctx, c.id);
    // Its bindings go with it (foreign key): a connection added later binds anew.
    await deleteConnection(trx, ctx.tenantId, c.id);
    await recordEvent(trx, ctx, {
      event: 'sso_connection.deleted',
      entity: entity(c),
      before: audited(c),
      after: claimGroups ? { claimGroupsRemoved: claimGroups } : null,
    });
  });
}

/** Forgets the IdP identity a user signs in as through a connection. */
export async function removeSsoBinding(db: Db, ctx: Ctx, userId: string, connectionId: string): Promise<void> {
  await db.tx(async (trx) => {
    const user = await requireUser(trx, ctx.tenantId, userId);
    const removed = await unbind(trx, ctx.tenantId, user.id, connectionId);
    await recordEvent(trx, ctx, {
      event: 'sso.binding_removed',
      entity: { type: 'user', id: user.id, name: user.email ?? user.userName },
      before: { connectionId: removed.connectionId, subject: removed.subject },
      after: null,
    });
  });
}

/**
 * A deleted connection's claim groups go too (their memberships with them), and the rules are
 * applied again to their members: nothing keeps access that only that IdP asserted.
 */
async function removeClaimGroups(trx: Knex, ctx: Ctx, connectionId: string): Promise<number> {
  const groups = (
    await trx('idp_groups').where({ tenant_id: ctx.tenantId, connection_id: connectionId }).select('id')
  ).map((r: Record<string, unknown>) => String(r.id));
  if (!groups.length) return 0;
  const users = new Set<string>();
  const rows = await inChunks(trx, groups, (part) =>
    trx('idp_group_members')
      .where({ tenant_id: ctx.tenantId, member_type: 'User' })
      .whereIn('group_id', part)
      .distinct('member_id'),
  );
  for (const r of rows) users.add(String(r.member_id));
  await trx('idp_groups').where({ tenant_id: ctx.tenantId, connection_id: connectionId }).delete();
  await syncAfterDirectoryChange(trx, ctx, [...users]);
  return groups.length;
}
