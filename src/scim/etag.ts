import type { VersionCondition } from '../db/versioned.js';
import { InvalidInput } from '../errors.js';

export function etagOf(version: number): string {
  return `W/"${version}"`;
}

/**
 * A header's entity tags (RFC 9110 §8.8.3, §13.1.1): `*`, or the opaque parts of a list of
 * tags. Tags are compared by their opaque part, so `W/"7"` and `"7"` are the same tag: RFC 7644
 * §3.14 sends Roster's weak tags back in If-Match, and Roster's versions are exact either way.
 */
type TagList = '*' | string[];

const malformed = (name: string, header: string) =>
  new InvalidInput(
    'invalid_precondition',
    `${name} ${JSON.stringify(header)} is not "*" or a list of entity tags such as W/"3"`,
    {
      scimType: 'invalidSyntax',
    },
  );

/** `*` or `1#entity-tag`; empty list elements are allowed (RFC 9110 §5.6.1.2), nothing else. */
function parseTags(name: string, header: string): TagList {
  if (header.trim() === '*') return '*';
  const tags: string[] = [];
  // One tag per step: optional `W/`, a quoted run of etagc (no space, no DQUOTE), then a comma.
  const element = /[ \t]*(?:(?:W\/)?"([\x21\x23-\x7e\x80-\xff]*)")?[ \t]*(?:,|$)/y;
  let at = 0;
  while (at < header.length) {
    element.lastIndex = at;
    const m = element.exec(header);
    if (!m) throw malformed(name, header);
    if (m[1] !== undefined) tags.push(m[1]);
    at = element.lastIndex;
  }
  return tags;
}

/** Versions among tags: a tag names a version only when its text is exactly that number. */
function versionsOf(tags: string[]): number[] {
  return [...new Set(tags.filter((t) => /^(?:0|[1-9]\d{0,14})$/.test(t)).map(Number))];
}

/**
 * The condition that If-Match and If-None-Match (as sent, possibly absent) put on a write, or
 * undefined when there is none. A malformed header is a 400; a well-formed tag that names no
 * version this server issued simply never matches, so If-Match with it fails with 412.
 */
export function writeCondition(ifMatch: string | undefined, ifNoneMatch?: string): VersionCondition | undefined {
  if (ifMatch === undefined && ifNoneMatch === undefined) return undefined;
  const cond: { in?: number[]; notIn?: number[] } = {};
  if (ifMatch !== undefined) {
    const tags = parseTags('If-Match', ifMatch);
    if (tags !== '*') cond.in = versionsOf(tags);
  }
  if (ifNoneMatch !== undefined) {
    const tags = parseTags('If-None-Match', ifNoneMatch);
    // `*` refuses every existing resource: no version can satisfy it.
    if (tags === '*') cond.in = [];
    else cond.notIn = versionsOf(tags);
  }
  return cond;
}

/** True when an If-None-Match header names the resource's current version (GET answers 304). */
export function notModified(header: string | undefined, version: number): boolean {
  if (header === undefined) return false;
  const tags = parseTags('If-None-Match', header);
  return tags === '*' || tags.includes(String(version));
}
