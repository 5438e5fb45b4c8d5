/** Who is acting. `display` is what the audit log shows when the actor is later deleted. */
export interface Actor {
  type: 'user' | 'api_key' | 'scim_token' | 'rule' | 'system';
  id: string | null;
  display?: string;
}

/**
 * Per-request context, built in http/ and passed explicitly downwards. The tenant comes from the
 * authenticated credential, never from a URL or a body.
 */
export interface Ctx {
  tenantId: string;
  actor: Actor;
  requestId: string;
  now: Date;
}

export function systemCtx(tenantId: string, requestId = 'system'): Ctx {
  return { tenantId, actor: { type: 'system', id: null, display: 'system' }, requestId, now: new Date() };
}
