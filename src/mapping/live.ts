/**
 * Fail-closed reading of derived rows. A membership or grant a mapping rule produced carries
 * (rule_id, rule_version); it counts only while that rule exists, is enabled and is still at
 * that version. Disabling, deleting or changing a rule therefore revokes at the next request;
 * the sweep that follows only deletes rows that already count for nothing. Manual rows
 * (rule_id '') always count.
 *
 * Every read that decides or shows access (the check, group membership and manager power,
 * member listings, agent access, reports) adds this condition. It is an indexed lookup on
 * mapping_rules' primary key per derived row.
 */
export function liveDerivedSql(table: string): string {
  return `(${table}.rule_id = '' OR EXISTS (SELECT 1 FROM mapping_rules live_r WHERE live_r.tenant_id = ${table}.tenant_id AND live_r.id = ${table}.rule_id AND live_r.enabled = 1 AND live_r.version = ${table}.rule_version))`;
}
