import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export type TokenKind = 'scim' | 'admin';
export const TOKEN_KINDS: readonly TokenKind[] = ['scim', 'admin'];

/**
 * Recognisable prefixes, so secret scanners and people can tell a SCIM token from an admin key
 * at a glance (the GitHub `ghp_` habit).
 */
const PREFIX: Record<TokenKind, string> = { scim: 'roster_scim_', admin: 'roster_admin_' };

export interface MintedToken {
  token: string;
  hash: string;
  hint: string;
}

/** 256 random bits, base64url, behind the kind's prefix. */
export function mintToken(kind: TokenKind): MintedToken {
  const token = PREFIX[kind] + randomBytes(32).toString('base64url');
  return { token, hash: hashToken(token), hint: `${token.slice(0, PREFIX[kind].length + 4)}…` };
}

/** Tokens carry 256 bits of entropy, so a plain SHA-256 is a sufficient one-way store. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export function hashesEqual(a: string, b: string): boolean {
  const ba = Buffer.from(a, 'hex');
  const bb = Buffer.from(b, 'hex');
  return ba.length === bb.length && timingSafeEqual(ba, bb);
}

/** The kind a token's prefix claims, if any; the stored row stays authoritative. */
export function kindOfToken(token: string): TokenKind | undefined {
  return TOKEN_KINDS.find((k) => token.startsWith(PREFIX[k]));
}
