import { InvalidInput } from '../errors.js';

export function etagOf(version: number): string {
  return `W/"${version}"`;
}

/**
 * The version an If-Match header demands, or undefined when there is none or it is `*`.
 * Strong and weak forms are both accepted: Roster's versions are exact either way.
 */
export function expectedVersion(header: string | undefined): number | undefined {
  if (header === undefined || header.trim() === '*') return undefined;
  const m = /^\s*(?:W\/)?"(\d{1,12})"\s*(?:,|$)/.exec(header);
  if (!m) {
    throw new InvalidInput('invalid_if_match', `If-Match ${JSON.stringify(header)} is not an ETag this server issued`, {
      scimType: 'invalidVers',
    });
  }
  return Number(m[1]);
}

/** True when an If-None-Match header names the resource's current version. */
export function notModified(header: string | undefined, version: number): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((t) => t.trim().replace(/^W\//, '') === `"${version}"`);
}
