import type { Area } from './catalogue.js';
import { requireAdmin, requireUserManager, type Principal } from './principal.js';

/**
 * Who may call each management operation: the first gate, declared once. The registry refuses
 * an operation missing here, shows each requirement in the OpenAPI document, and enforces the
 * role-only ones (`admin`, `user_manager`) before the handler runs. Requirements that depend on
 * the object (the user asked about, a group's managers, an agent's creator) are checked where
 * the object is read; the commands keep their own rules on top (never beyond your own rights,
 * in policies.ts). A caller below the requirement gets 403 and nothing changes.
 */
export type Access =
  /** No credential: the body carries one (an invitation token). */
  | 'public'
  /** Any caller of the tenant: the admin key, and every active user. */
  | 'member'
  /** A person (a key they own or their session), not the tenant's admin key. */
  | 'person'
  /** User managers, and a user about themselves. */
  | 'self_or_user_manager'
  /** User managers, and the managers of the group named (while it is active). */
  | 'group_manager_or_user_manager'
  /** Admins, and the user who registered the agent named. */
  | 'admin_or_creator'
  /** Admins, and members holding manage on the user-management area. */
  | 'user_manager'
  /** Admins (the tenant's admin key, and users whose role is admin). */
  | 'admin';

/** One sentence per requirement, for the OpenAPI document. */
export const ACCESS_TEXT: Record<Access, string> = {
  public: 'Access: anyone; the request carries its own credential.',
  member: 'Access: any caller of the tenant.',
  person: "Access: a person (a key they own or their session), not the tenant's admin key.",
  self_or_user_manager: 'Access: admins and user managers, and a user about themselves; anyone else gets 403.',
  group_manager_or_user_manager:
    "Access: admins and user managers, and the group's own managers; anyone else gets 403.",
  admin_or_creator: 'Access: admins, and the user who registered the agent; anyone else gets 403.',
  user_manager: 'Access: admins, and members with manage on the user-management area; anyone else gets 403.',
  admin: 'Access: admins only; anyone else gets 403.',
};

/** Every management operation by operationId, grouped as the registry registers them. */
export const OPERATION_ACCESS: Record<string, Access> = {
  // tenant and catalogue
  getTenant: 'member',
  updateTenant: 'admin',
  listAreas: 'member',
  // users and their permissions
  listUsers: 'user_manager',
  getUser: 'self_or_user_manager',
  updateUser: 'user_manager',
  deleteUser: 'user_manager',
  getUserPermissions: 'self_or_user_manager',
  setUserPermissions: 'user_manager',
  checkAreas: 'self_or_user_manager',
  // invitations
  inviteUser: 'user_manager',
  resendInvitation: 'user_manager',
  acceptInvitation: 'public',
  // role templates: everyone may read them (a member sees what a template would give)
  listRoleTemplates: 'member',
  getRoleTemplate: 'member',
  createRoleTemplate: 'user_manager',
  updateRoleTemplate: 'user_manager',
  deleteRoleTemplate: 'user_manager',
  // API keys
  listApiKeys: 'admin',
  createApiKey: 'admin',
  revokeApiKey: 'admin',
  // local groups
  listGroups: 'user_manager',
  createGroup: 'user_manager',
  getGroup: 'group_manager_or_user_manager',
  updateGroup: 'user_manager',
  deleteGroup: 'user_manager',
  listGroupMembers: 'group_manager_or_user_manager',
  addGroupMembers: 'group_manager_or_user_manager',
  removeGroupMembers: 'group_manager_or_user_manager',
  removeGroupMember: 'group_manager_or_user_manager',
  // agents, their grants and data sources
  listAgents: 'admin',
  createAgent: 'admin',
  getAgent: 'admin_or_creator',
  updateAgent: 'admin_or_creator',
  deleteAgent: 'admin',
  listAgentGrants: 'admin',
  createAgentGrant: 'admin',
  updateAgentGrant: 'admin',
  deleteAgentGrant: 'admin',
  listAgentDataSources: 'admin',
  createAgentDataSource: 'admin',
  updateAgentDataSource: 'admin',
  deleteAgentDataSource: 'admin',
  // agent access checks
  checkAgentAccess: 'self_or_user_manager',
  checkAgentAccessBatch: 'self_or_user_manager',
  listUserAgents: 'self_or_user_manager',
  listAgentAccess: 'user_manager',
  // mapping rules
  listMappingRules: 'admin',
  createMappingRule: 'admin',
  getMappingRule: 'admin',
  updateMappingRule: 'admin',
  deleteMappingRule: 'admin',
  previewMappingRule: 'admin',
  reconcileMappingRules: 'admin',
  getMappingSyncStatus: 'admin',
  listUserIdpGroups: 'self_or_user_manager',
  // reports
  reportAccessMatrix: 'user_manager',
  reportGroupMembership: 'user_manager',
  reportCoverage: 'user_manager',
  // jobs and imports
  listJobs: 'admin',
  getJob: 'admin',
  cancelJob: 'admin',
  importGroupMembers: 'admin',
  importAgentGrants: 'admin',
  // audit log
  listAuditEvents: 'admin',
  exportAuditEvents: 'admin',
  // SSO connections and sign-in bindings
  listSsoConnections: 'admin',
  createSsoConnection: 'admin',
  getSsoConnection: 'admin',
  updateSsoConnection: 'admin',
  deleteSsoConnection: 'admin',
  listSsoBindings: 'admin',
  deleteSsoBinding: 'admin',
  // the caller
  getMe: 'person',
};

export function accessOf(operationId: string): Access {
  const access = OPERATION_ACCESS[operationId];
  if (!access) throw new Error(`operation ${operationId} declares no access in operation-access.ts`);
  return access;
}

/**
 * The first gate, for requirements that need no object: refuses with the same 403 the handlers
 * and commands give (admin_required, not_allowed), so a caller sees one answer wherever it is
 * decided. `what` names the operation in the refusal.
 */
export function gate(p: Principal, catalogue: Area[], access: Access, what: string): void {
  if (access === 'admin') requireAdmin(p, what);
  else if (access === 'user_manager') requireUserManager(p, catalogue, what);
}
