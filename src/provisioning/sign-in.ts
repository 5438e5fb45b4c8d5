import type { Knex } from 'knex';
import { syncAfterDirectoryChange } from './mapping.js';
import { lockMapping } from '../mapping/lock.js';
import { recordEvent } from '../audit/record.js';
import type { Actor, Ctx } from '../context.js';
import { eachChunk, insertChunked } from '../db/batch.js';
import { currentRead } from '../db/dialect.js';
import { toBool } from '../db/rows.js';
import type { Db } from '../db/knex.js';
import { newId } from '../db/ids.js';
import type { GroupSource } from '../directory/groups.js';
import { insertUser, userFromRow, writeAccountFields, type User } from '../directory/users.js';
import { Conflict, Forbidden } from '../errors.js';
import { caseMappedKey, charLength } from '../directory/model/value-key.js';
import { bind, boundUser, isBoundThrough } from '../connections/bindings.js';
import { inDomains } from '../connections/connections.js';
import { takeSeat } from '../tenants/seats.js';
import { getTenant } from '../tenants/store.js';
import { activateInvited } from './invitations.js';

/** What an IdP asserted about the person, already verified by the protocol layer. */
export interface SignInIdentity {
  /** Who the IdP says this is, for good (SAML NameID, OIDC sub); null when it never repeats (transient NameID). */
  subject: string | null;
  email: string | null;
  /** OIDC: email_verified was true (or the connection trusts the IdP without it); SAML: always, the connection's domains decide. */
  emailVerified: boolean;
  userName: string | null;
  externalId: string | null;
  displayName: string | null;
}

/**
 * The groups a sign-in carries: `unmanaged` when the connection does not sync groups, `overage`
 * when the IdP had too many to send (Entra points to Graph instead), else the list.
 */
export type ClaimGroups = { kind: 'unmanaged' } | { kind: 'overage' } | { kind: 'listed'; names: string[] };

export interface SignInConnection {
  id: string;
  name: string;
  protocol: 'saml' | 'oidc';
  matchBy: 'email' | 'userName' | 'externalId';
  /** Email domains this IdP may assert; empty: any. */
  domains: string[];
}

export interface IdpGroupRef {
  id: string;
  displayName: string;
}

/** A user's claim-sourced IdP group memberships before and after a sign-in. */
export interface ClaimGroupChange {
  source: Extract<GroupSource, 'saml' | 'oidc'>;
  /** The connection that asserted the groups, and owns them. */
  connectionId: string;
  added: IdpGroupRef[];
  removed: IdpGroupRef[];
  /** Groups first seen in this sign-in's claims. */
  created: IdpGroupRef[];
}

export interface SignInResult {
  user: User;
  invitationAccepted: boolean;
  provisioned: boolean;
  groups: ClaimGroupChange | null;
}

/**
 * A sign-in Roster refuses, with the reason the audit log records (`login.failed`,
 * `after.reason`) and the user when one was found.
 */
export class SignInRefused extends Forbidden {
  constructor(
    reason: string,
    message: string,
    readonly user: User | null = null,
  ) {
    super(reason, message);
  }
}

function entity(u: User) {
  return { type: 'user', id: u.id, name: u.email ?? u.userName };
}

function userActor(u: User): Actor {
  return { type: 'user', id: u.id, display: u.email ?? u.userName };
}

/** An address the connection may vouch for: verified, and in its domains when it has some. */
function trustedEmail(c: SignInConnection, id: SignInIdentity): string | null {
  return id.email && id.emailVerified && (!c.domains.length || inDomains(id.email, c.domains)) ? id.email : null;
}

/** The identity value a first sign-in through the connection matches on, and what a failure calls it. */
function matchValue(c: SignInConnection, id: SignInIdentity): string {
  const value = c.matchBy === 'email' ? id.email : c.matchBy === 'userName' ? id.userName : id.externalId;
  if (!value)
    throw new SignInRefused(
      'missing_identifier',
      `the identity provider sent no ${c.matchBy === 'email' ? 'email address' : c.matchBy}, which this connection matches users by`,
    );
  if (c.matchBy === 'email' && !id.emailVerified)
    throw new SignInRefused('email_not_verified', `the identity provider does not say that ${value} is verified`);
  // A user name shaped like an address (Okta logins, Entra UPNs) is held to the domains as well.
  const outside =
    c.matchBy === 'email'
      ? trustedEmail(c, id) === null
      : c.matchBy === 'userName' && value.includes('@') && c.domains.length > 0 && !inDomains(value, c.domains);
  if (outside)
    throw new SignInRefused(
      'email_domain_not_allowed',
      `${c.name} may not sign in addresses at ${value.slice(value.lastIndexOf('@') + 1)}; ask an admin`,
    );
  return value;
}

/**
 * A connection with domains speaks only for users whose Roster address lies in them (their
 * email, else a user name shaped like an address), whatever it matched on or bound earlier: an
 * externalId, a plain user name or a binding made before the domains were set names no domain.
 */
function assertUserInDomains(c: SignInConnection, user: User): void {
  if (!c.domains.length) return;
  const address = user.email ?? (user.userName.includes('@') ? user.userName : null);
  if (address && inDomains(address, c.domains)) return;
  throw new SignInRefused(
    'email_domain_not_allowed',
    `${c.name} may not sign in ${address ? `addresses at ${address.slice(address.lastIndexOf('@') + 1)}` : 'users without an address in its domains'}; ask an admin`,
    user,
  );
}

/** Users holding the value; email and externalId are not unique, so more than one is possible. */
async function candidates(trx: Knex, tenantId: string, c: SignInConnection, value: string): Promise<User[]> {
  const q = trx('users').where('tenant_id', tenantId);
  if (c.matchBy === 'email') q.andWhere('email_key', caseMappedKey(value).slice(0, 320));
  else if (c.matchBy === 'userName') q.andWhere('user_name_key', caseMappedKey(value));
  else q.andWhere('external_id', value);
  return (await q.limit(2)).map(userFromRow);
}

async function provisionJit(
  trx: Knex,
  ctx: Ctx,
  c: SignInConnection,
  id: SignInIdentity,
  value: string,
): Promise<User> {
  const tenant = await getTenant(trx, ctx.tenantId);
  if (!tenant.jitProvisioning) {
    throw new SignInRefused(
      'jit_disabled',
      `no user matches ${value} in ${tenant.name}, and this organisation does not create accounts at first sign-in; ask an admin to invite you`,
    );
  }
  const email = trustedEmail(c, id);
  // The user name is what SCIM and later matches find the account by: a connection with domains
  // may give only one inside them, else the trusted address stands in (R6: a contractor IdP
  // must not reserve a corporate user name for its own identity).
  const ownName =
    id.userName && (!c.domains.length || (id.userName.includes('@') && inDomains(id.userName, c.domains)))
      ? id.userName
      : null;
  const userName = ownName ?? email;
  if (!userName)
    throw new SignInRefused(
      'unknown_user',
      `no user matches ${value}, and the identity provider sent no email or user name to create one with`,
    );
  try {
    await takeSeat(trx, ctx.tenantId);
  } catch (err) {
    if (err instanceof Forbidden)
      throw new SignInRefused('no_seat', `${tenant.name} has no free seat for a new user; ask an admin`);
    throw err;
  }
  const doc = {
    userName,
    ...(email ? { emails: [{ value: email, type: 'work', primary: true }] } : {}),
    ...(id.displayName ? { displayName: id.displayName } : {}),
    ...(c.matchBy === 'externalId' ? { externalId: value } : {}),
    active: true,
  };
  let user: User;
  try {
    user = await insertUser(
      trx,
      ctx.tenantId,
      { doc, source: 'jit', status: 'active', role: 'member' },
      ctx.now.getTime(),
    );
  } catch (err) {
    if (err instanceof Conflict)
      throw new SignInRefused(
        'unknown_user',
        `no user matches ${value}, and the user name ${userName} belongs to another user`,
      );
    throw err;
  }
  await recordEvent(trx, ctx, {
    event: 'sso.user.created',
    entity: entity(user),
    before: null,
    after: { ...doc, role: 'member', connectionId: c.id },
  });
  return writeAccountFields(trx, user, { lastLoginAt: ctx.now.getTime() });
}

/**
 * A connection without domains matches users only while it is the tenant's one enabled
 * connection: a tenant left with several and no domains (migration 009) would otherwise be one
 * trust space again, where any IdP names anyone.
 */
async function assertOwnTrustSpace(trx: Knex, tenantId: string, c: SignInConnection): Promise<void> {
  if (c.domains.length) return;
  const row = await trx('sso_connections').where({ tenant_id: tenantId, enabled: true }).count({ n: '*' }).first();
  if (Number(row?.n ?? 0) < 2) return;
  throw new SignInRefused(
    'connection_domains_required',
    `${c.name} has no email domains while this organisation has several sign-in connections; ask an admin to set its domains`,
  );
}

type Resolved = { user: User; provisioned: boolean; invitationAccepted: boolean };

function boundToOther(c: SignInConnection, value: string, user: User): SignInRefused {
  return new SignInRefused(
    'bound_to_other_identity',
    `${value} signs in through ${c.name} as another identity of that provider; an admin can remove that binding`,
    user,
  );
}

/** An existing user signs in: last login recorded, suspension refused, an invitation accepted. */
async function signInExisting(trx: Knex, ctx: Ctx, found: User): Promise<Resolved> {
  // The write takes the row lock first, so the status read next is current: a concurrent SCIM
  // deactivation either lands before this sign-in or waits for it.
  await writeAccountFields(trx, found, { lastLoginAt: ctx.now.getTime() });
  const user = userFromRow(await currentRead(trx('users').where({ tenant_id: ctx.tenantId, id: found.id })).first());
  if (user.status === 'suspended')
    throw new SignInRefused('suspended', `the account ${user.email ?? user.userName} is suspended; ask an admin`, user);
  if (user.status === 'invited') {
    const active = await activateInvited(trx, { ...ctx, actor: userActor(user) }, user.id, 'sign_in');
    return { user: active, provisioned: false, invitationAccepted: true };
  }
  return { user, provisioned: false, invitationAccepted: false };
}

/**
 * Finds the user, creates one just in time, or refuses. An identity already bound through this
 * connection is its user, whatever the user's email is now; a first sign-in matches by the
 * connection's matchBy and binds the identity to the user it found (or created).
 */
async function resolveUser(trx: Knex, ctx: Ctx, c: SignInConnection, id: SignInIdentity): Promise<Resolved> {
  if (id.subject) {
    const boundId = await boundUser(trx, ctx.tenantId, c.id, id.subject);
    const bound = boundId
      ? await currentRead(trx('users').where({ tenant_id: ctx.tenantId, id: boundId })).first()
      : undefined;
    if (bound) {
      assertUserInDomains(c, userFromRow(bound));
      return signInExisting(trx, ctx, userFromRow(bound));
    }
  }
  await assertOwnTrustSpace(trx, ctx.tenantId, c);
  const value = matchValue(c, id);
  const found = await candidates(trx, ctx.tenantId, c, value);
  if (found.length > 1)
    throw new SignInRefused('ambiguous_user', `several users match ${value}; an admin must make it unique`);
  let resolved: Resolved;
  if (!found.length)
    resolved = { user: await provisionJit(trx, ctx, c, id, value), provisioned: true, invitationAccepted: false };
  else {
    // The user already signs in through this connection as someone else at the IdP: the email
    // (or user name) may have been pointed at them, so this identity does not get their account.
    if (id.subject && (await isBoundThrough(trx, ctx.tenantId, c.id, found[0]!.id)))
      throw boundToOther(c, value, found[0]!);
    assertUserInDomains(c, found[0]!);
    resolved = await signInExisting(trx, ctx, found[0]!);
  }
  if (
    id.subject &&
    (await bind(trx, ctx.tenantId, c.id, id.subject, resolved.user.id, ctx.now.getTime())) !== resolved.user.id
  )
    throw boundToOther(c, value, resolved.user);
  return resolved;
}

/** The IdP groups of these names asserted by one connection, created when first seen. */
async function ensureClaimGroups(
  trx: Knex,
  ctx: Ctx,
  c: SignInConnection,
  names: Map<string, string>,
): Promise<{ byKey: Map<string, IdpGroupRef>; created: IdpGroupRef[] }> {
  const keys = [...names.keys()];
  const byKey = new Map<string, IdpGroupRef>();
  // Current reads: a group another sign-in created since this transaction began must be found.
  const read = async (part: string[]) => {
    const rows = await currentRead(
      trx('idp_groups')
        .where({ tenant_id: ctx.tenantId, source: c.protocol, connection_id: c.id })
        .whereIn('display_name_key', part)
        .select('id', 'display_name', 'display_name_key'),
    );
    for (const r of rows)
      byKey.set(String(r.display_name_key), { id: String(r.id), displayName: String(r.display_name) });
  };
  await eachChunk(trx, keys, read);
  const missing = keys.filter((k) => !byKey.has(k));
  const now = ctx.now.getTime();
  await eachChunk(trx, missing, async (part) => {
    // A claim value is both the name and the externalId: Entra sends object ids, Okta names,
    // and rules match either. Two first sign-ins with the same new group may race; the no-op
    // update lets the second find the first's row.
    await insertChunked(
      trx,
      'idp_groups',
      part.map((key) => {
        const name = names.get(key)!;
        return {
          tenant_id: ctx.tenantId,
          id: newId(),
          source: c.protocol,
          connection_id: c.id,
          display_name: name,
          display_name_key: key,
          external_id: name,
          scim_doc: JSON.stringify({ displayName: name, externalId: name }),
          version: 1,
          created_at: now,
          updated_at: now,
        };
      }),
      { conflict: (q) => q.onConflict(['tenant_id', 'source', 'connection_id', 'display_name_key']).merge(['source']) },
    );
    await read(part);
  });
  return { byKey, created: missing.map((k) => byKey.get(k)!) };
}

/**
 * Makes the user's memberships in the connection's claim groups exactly the claimed ones. The
 * user also leaves the protocol's unowned claim groups (connection_id '': made before groups had
 * owners, in a tenant with several connections of the protocol, see migration 009). SCIM groups
 * and other connections' groups are left alone.
 */
async function replaceClaimGroups(
  trx: Knex,
  ctx: Ctx,
  userId: string,
  c: SignInConnection,
  claimed: string[],
): Promise<ClaimGroupChange> {
  const names = new Map<string, string>();
  for (const raw of claimed) {
    const name = raw.trim();
    // A name or key longer than its column is skipped alike on every database: MariaDB would
    // refuse a key that case mapping made longer ("İ" maps to two characters), SQLite store it.
    const key = caseMappedKey(name);
    if (name && charLength(name) <= 255 && charLength(key) <= 255 && !names.has(key)) names.set(key, name);
  }
  const { byKey, created } = await ensureClaimGroups(trx, ctx, c, names);
  const wanted = new Map([...byKey.values()].map((g) => [g.id, g]));
  const current = new Map<string, IdpGroupRef>(
    (
      await currentRead(
        trx('idp_group_members as m')
          .join('idp_groups as g', function () {
            this.on('g.tenant_id', 'm.tenant_id').andOn('g.id', 'm.group_id');
          })
          .where({ 'm.tenant_id': ctx.tenantId, 'm.member_id': userId, 'g.source': c.protocol })
          .whereIn('g.connection_id', [c.id, ''])
          .select('g.id', 'g.display_name'),
      )
    ).map((r: Record<string, unknown>) => [String(r.id), { id: String(r.id), displayName: String(r.display_name) }]),
  );
  const removed = [...current.values()].filter((g) => !wanted.has(g.id));
  const added = [...wanted.values()].filter((g) => !current.has(g.id));
  await eachChunk(
    trx,
    removed.map((g) => g.id),
    (part) =>
      trx('idp_group_members').where({ tenant_id: ctx.tenantId, member_id: userId }).whereIn('group_id', part).delete(),
  );
  await insertChunked(
    trx,
    'idp_group_members',
    added.map((g) => ({
      tenant_id: ctx.tenantId,
      group_id: g.id,
      member_id: userId,
      member_type: 'User',
      created_at: ctx.now.getTime(),
    })),
    { conflict: (q) => q.onConflict(['tenant_id', 'group_id', 'member_id']).merge(['member_type']) },
  );
  return { source: c.protocol, connectionId: c.id, added, removed, created };
}

/**
 * Everything that follows from a change of a user's claim-sourced IdP groups happens here, in
 * the sign-in's transaction: the audit record, and the mapping rules, which apply to exactly
 * these added and removed memberships.
 */
export async function applyClaimGroupChange(trx: Knex, ctx: Ctx, user: User, change: ClaimGroupChange): Promise<void> {
  if (!change.added.length && !change.removed.length) return;
  await recordEvent(trx, ctx, {
    event: 'sso.user.groups_changed',
    entity: entity(user),
    before: { removed: change.removed },
    after: {
      source: change.source,
      connectionId: change.connectionId,
      added: change.added,
      ...(change.created.length ? { groupsCreated: change.created.map((g) => g.id) } : {}),
    },
  });
  await syncAfterDirectoryChange(trx, ctx, [user.id]);
}

/**
 * A verified sign-in, in one transaction: the user is found (or created just in time, or the
 * sign-in refused), an invitation is accepted, the last login recorded, the claimed groups
 * replace the user's claim-sourced IdP groups, and `login.succeeded` is written. SSO never sets
 * roles or area permissions. Refusals throw SignInRefused and change nothing.
 */
export async function signInFromClaims(
  db: Db,
  ctx: Ctx,
  c: SignInConnection,
  identity: SignInIdentity,
  groups: ClaimGroups,
): Promise<SignInResult> {
  return db.tx(async (trx) => {
    // First statement: the mapping lock (src/mapping/lock.ts).
    await lockMapping(trx, ctx.tenantId, 'share');
    // The connection was read before the lock: one deleted or turned off meanwhile (its claim
    // groups removed under the exclusive lock) must not bring them back.
    const current = await currentRead(
      trx('sso_connections').where({ tenant_id: ctx.tenantId, id: c.id }).first('enabled'),
    );
    if (!current || !toBool(current.enabled))
      throw new SignInRefused('connection_disabled', `sign-in through ${c.name} is turned off; ask an administrator`);
    const resolved = await resolveUser(trx, ctx, c, identity);
    const user = resolved.user;
    const asUser: Ctx = { ...ctx, actor: userActor(user) };
    let change: ClaimGroupChange | null = null;
    if (groups.kind === 'listed') {
      change = await replaceClaimGroups(trx, asUser, user.id, c, groups.names);
      await applyClaimGroupChange(trx, asUser, user, change);
    } else if (groups.kind === 'overage') {
      await recordEvent(trx, asUser, {
        event: 'sso.groups_overage',
        entity: entity(user),
        before: null,
        after: {
          connectionId: c.id,
          warning:
            'the identity provider sent a link to the groups instead of the groups (too many to fit); the previous memberships are kept',
        },
      });
    }
    await recordEvent(trx, asUser, {
      event: 'login.succeeded',
      entity: entity(user),
      before: null,
      after: {
        connectionId: c.id,
        connection: c.name,
        protocol: c.protocol,
        ...(resolved.provisioned ? { provisioned: true } : {}),
        ...(resolved.invitationAccepted ? { invitationAccepted: true } : {}),
      },
    });
    return { user, invitationAccepted: resolved.invitationAccepted, provisioned: resolved.provisioned, groups: change };
  });
}

/** A refused or failed sign-in, recorded in its own transaction (the sign-in's rolled back). */
export async function recordLoginFailure(
  db: Db,
  ctx: Ctx,
  c: SignInConnection,
  reason: string,
  user: User | null,
  subject: string | null,
): Promise<void> {
  await db.tx((trx) =>
    recordEvent(trx, user ? { ...ctx, actor: userActor(user) } : ctx, {
      event: 'login.failed',
      entity: user ? entity(user) : { type: 'user', id: null, name: subject },
      before: null,
      after: { reason, connectionId: c.id, connection: c.name, protocol: c.protocol },
    }),
  );
}
