import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import type { Readable } from 'node:stream';
import { parse } from 'csv-parse';
import type { Knex } from 'knex';
import { isValidDate } from '../access/grant-window.js';
import { resolveTimeZone } from '../access/grants.js';
import { groupNameKey, membershipsOf, putManualMembers } from '../access/local-groups.js';
import { requireAdmin, type Principal } from '../access/principal.js';
import { recordEvents, type AuditInput } from '../audit/record.js';
import type { Ctx } from '../context.js';
import type { Db } from '../db/knex.js';
import { inChunks, insertChunked } from '../db/batch.js';
import { newId } from '../db/ids.js';
import { InvalidInput, TooLarge, Unprocessable } from '../errors.js';
import {
  dropJobRows,
  enqueueJob,
  JobFailed,
  readJobRows,
  registerJobKind,
  stageJobRows,
  type Job,
  type JobKind,
} from '../jobs/index.js';
import { caseMappedKey } from '../directory/model/value-key.js';

/**
 * CSV imports (seed 004): users to groups and agent grants. The upload is read to its end into a
 * temporary file before any database work (a slow client holds no connection), then checked
 * against the database with short reads, every bad row reported with its line. Only then is
 * anything applied, all or nothing: in one transaction within the request for up to
 * IMPORT_JOB_THRESHOLD_ROWS rows, otherwise as a job (`import.<kind>`) whose rows are staged
 * in the database so that any process can apply them, in one transaction that reads only the
 * database.
 */

export type ImportKind = 'group-members' | 'agent-grants';

export interface RowError {
  line: number;
  reason: string;
}

export interface ImportReport {
  kind: ImportKind;
  dryRun: boolean;
  rows: number;
  /** What was (or, in a dry run, would be) added. */
  added: number;
  /** Rows that change nothing: the membership or grant exists already. */
  unchanged: number;
  errors: RowError[];
  errorCount: number;
}

const COLUMNS: Record<ImportKind, string[]> = {
  'group-members': ['name', 'email', 'group'],
  'agent-grants': ['agentid', 'groupid', 'permission', 'startdate', 'enddate'],
};
const CHUNK = 1000;
const MAX_REPORTED_ERRORS = 1000;
/** Larger imports are applied by a job (202 Accepted) rather than within the request. */
export const IMPORT_JOB_THRESHOLD_ROWS = 1000;

interface Line {
  line: number;
  cells: Record<string, string>;
}

/** Reads CSV records with their line numbers, a chunk at a time, refusing more than `maxBytes`. */
async function* chunks(input: Readable, kind: ImportKind, maxBytes: number): AsyncGenerator<Line[]> {
  let bytes = 0;
  input.on('data', (b: Buffer) => {
    bytes += b.length;
    if (bytes > maxBytes) input.destroy(new TooLarge('import_too_large', `the CSV file exceeds ${maxBytes} bytes`));
  });
  const parser = input.pipe(
    parse({ bom: true, trim: true, skip_empty_lines: true, relax_column_count: true, info: true }),
  );
  input.on('error', (err) => parser.destroy(err));
  let header: string[] | null = null;
  let batch: Line[] = [];
  for await (const { record, info } of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
    if (!header) {
      header = record.map((h) => h.toLowerCase().replace(/[^a-z]/g, ''));
      const missing = COLUMNS[kind].filter(
        (c) => !header!.includes(c) && !(kind === 'agent-grants' && (c === 'startdate' || c === 'enddate')),
      );
      if (missing.length) {
        throw new InvalidInput(
          'bad_csv_header',
          `line 1: the header must name the columns ${COLUMNS[kind].join(', ')} (missing: ${missing.join(', ')})`,
        );
      }
      continue;
    }
    const cells: Record<string, string> = {};
    header.forEach((h, i) => (cells[h] = record[i] ?? ''));
    batch.push({ line: info.lines, cells });
    if (batch.length === CHUNK) {
      yield batch;
      batch = [];
    }
  }
  if (!header) throw new InvalidInput('empty_csv', 'the CSV file is empty: it needs a header line');
  if (batch.length) yield batch;
}

async function groupsByName(trx: Knex, tenantId: string) {
  const rows = await trx('local_groups').where({ tenant_id: tenantId }).select('id', 'name', 'name_key', 'status');
  return new Map(
    rows.map((r: Record<string, unknown>) => [
      String(r.name_key),
      { id: String(r.id), name: String(r.name), active: r.status === 'active' },
    ]),
  );
}

async function importMembers(
  trx: Knex,
  ctx: Ctx,
  lines: Line[],
  report: ImportReport,
  groups: Awaited<ReturnType<typeof groupsByName>>,
  apply: boolean,
): Promise<void> {
  const emails = [...new Set(lines.map((l) => caseMappedKey(l.cells.email ?? '')).filter(Boolean))];
  const users = new Map(
    (
      await inChunks(trx, emails, (part) =>
        trx('users').where({ tenant_id: ctx.tenantId }).whereIn('email_key', part).select('id', 'email', 'email_key'),
      )
    ).map((u: Record<string, unknown>) => [String(u.email_key), { id: String(u.id), email: String(u.email) }]),
  );
  const emailOf = new Map([...users.values()].map((u) => [u.id, u.email]));
  const byGroup = new Map<string, Set<string>>();
  for (const l of lines) {
    const email = l.cells.email ?? '';
    const group = groups.get(groupNameKey(l.cells.group ?? ''));
    const user = users.get(caseMappedKey(email));
    const problems = [
      !email ? 'Email is empty' : !user ? `no user with email ${email}` : '',
      !l.cells.group
        ? 'Group is empty'
        : !group
          ? `no group named "${l.cells.group}"`
          : !group.active
            ? `group "${group.name}" is archived`
            : '',
    ].filter(Boolean);
    if (problems.length) {
      fail(report, l.line, problems.join('; '));
      continue;
    }
    const ids = byGroup.get(group!.id) ?? byGroup.set(group!.id, new Set()).get(group!.id)!;
    // A pair repeated in the file is one change; the repeats change nothing.
    if (ids.has(user!.id)) report.unchanged++;
    else ids.add(user!.id);
  }
  if (report.errorCount) return;
  const events: AuditInput[] = [];
  for (const [groupId, ids] of byGroup) {
    const current = await membershipsOf(trx, ctx.tenantId, groupId, [...ids]);
    const fresh = [...ids].filter((id) => !current.get(id)?.manual);
    report.added += fresh.length;
    report.unchanged += ids.size - fresh.length;
    if (!apply || !fresh.length) continue;
    await putManualMembers(trx, ctx.tenantId, groupId, fresh, [], 'member', ctx.now.getTime());
    const name = [...groups.values()].find((g) => g.id === groupId)?.name ?? null;
    for (const userId of fresh)
      events.push({
        event: 'group.member_added',
        entity: { type: 'group', id: groupId, name },
        before: null,
        after: { userId, email: emailOf.get(userId) ?? null, role: 'member', via: 'csv_import' },
      });
  }
  await recordEvents(trx, ctx, events);
}

const PERMISSIONS: Record<string, 'view_use' | 'edit'> = {
  view_and_use: 'view_use',
  view_use: 'view_use',
  edit: 'edit',
};

async function importGrants(
  trx: Knex,
  ctx: Ctx,
  lines: Line[],
  report: ImportReport,
  timeZone: string,
  apply: boolean,
): Promise<void> {
  const agentIds = [...new Set(lines.map((l) => l.cells.agentid ?? '').filter(Boolean))];
  const groupIds = [...new Set(lines.map((l) => l.cells.groupid ?? '').filter(Boolean))];
  const agents = new Map(
    (
      await inChunks(trx, agentIds, (part) =>
        trx('agents').where({ tenant_id: ctx.tenantId }).whereIn('id', part).select('id', 'name', 'access_type'),
      )
    ).map((a: Record<string, unknown>) => [
      String(a.id),
      { name: String(a.name), private: a.access_type === 'private' },
    ]),
  );
  const groups = new Map(
    (
      await inChunks(trx, groupIds, (part) =>
        trx('local_groups').where({ tenant_id: ctx.tenantId }).whereIn('id', part).select('id', 'name', 'status'),
      )
    ).map((g: Record<string, unknown>) => [String(g.id), { name: String(g.name), active: g.status === 'active' }]),
  );
  // Identical manual grants present now (earlier chunks of this import included), so a re-run adds nothing.
  const present = new Set(
    (
      await inChunks(trx, agentIds, (part) =>
        trx('agent_grants')
          .where({ tenant_id: ctx.tenantId, subject_type: 'group', rule_id: '' })
          .whereIn('agent_id', part),
      )
    ).map((g: Record<string, unknown>) =>
      [g.agent_id, g.subject_id, g.permission, g.start_date ?? '', g.end_date ?? '', g.time_zone].join('|'),
    ),
  );
  const rows: Record<string, unknown>[] = [];
  const events: AuditInput[] = [];
  for (const l of lines) {
    const c = l.cells;
    const agent = agents.get(c.agentid ?? '');
    const group = groups.get(c.groupid ?? '');
    const permission = PERMISSIONS[(c.permission ?? '').toLowerCase()];
    const given = c.timezone || timeZone;
    const zone = resolveTimeZone(given);
    const problems = [
      !c.agentid
        ? 'AgentId is empty'
        : !agent
          ? `no agent "${c.agentid}"`
          : agent.private
            ? `agent "${agent.name}" is private: grants are refused`
            : '',
      !c.groupid
        ? 'GroupId is empty'
        : !group
          ? `no group "${c.groupid}"`
          : !group.active
            ? `group "${group.name}" is archived`
            : '',
      !permission ? `Permission must be VIEW_AND_USE or EDIT, got "${c.permission ?? ''}"` : '',
      c.startdate && !isValidDate(c.startdate) ? `StartDate "${c.startdate}" is not a date YYYY-MM-DD` : '',
      c.enddate && !isValidDate(c.enddate) ? `EndDate "${c.enddate}" is not a date YYYY-MM-DD` : '',
      c.startdate && c.enddate && c.startdate > c.enddate ? 'EndDate is before StartDate' : '',
      !zone ? `"${given}" is not an IANA time zone` : '',
    ].filter(Boolean);
    if (problems.length) {
      fail(report, l.line, problems.join('; '));
      continue;
    }
    const key = [c.agentid, c.groupid, permission, c.startdate ?? '', c.enddate ?? '', zone!].join('|');
    if (present.has(key)) {
      report.unchanged++;
      continue;
    }
    present.add(key);
    report.added++;
    const row = {
      tenant_id: ctx.tenantId,
      id: newId(),
      agent_id: c.agentid,
      subject_type: 'group',
      subject_id: c.groupid,
      permission,
      start_date: c.startdate || null,
      end_date: c.enddate || null,
      time_zone: zone!,
      rule_id: '',
      idp_group_id: '',
      created_at: ctx.now.getTime(),
    };
    rows.push(row);
    events.push({
      event: 'agent.grant_created',
      entity: { type: 'agent', id: String(c.agentid), name: agent!.name },
      before: null,
      after: {
        agentId: c.agentid,
        agentName: agent!.name,
        groupId: c.groupid,
        groupName: group!.name,
        permission,
        startDate: row.start_date,
        endDate: row.end_date,
        timeZone: zone!,
        via: 'csv_import',
      },
    });
  }
  if (report.errorCount || !apply) return;
  await insertChunked(trx, 'agent_grants', rows);
  await recordEvents(trx, ctx, events);
}

function fail(report: ImportReport, line: number, reason: string): void {
  report.errorCount++;
  if (report.errors.length < MAX_REPORTED_ERRORS) report.errors.push({ line, reason });
}

function newReport(kind: ImportKind, dryRun: boolean): ImportReport {
  return { kind, dryRun, rows: 0, added: 0, unchanged: 0, errors: [], errorCount: 0 };
}

/** Writes the parsed records to `file`, one JSON line each; answers how many rows there were. */
async function spool(input: Readable, kind: ImportKind, maxBytes: number, file: string): Promise<number> {
  const out = fs.createWriteStream(file);
  const failed = new Promise<never>((_, reject) => out.once('error', reject));
  failed.catch(() => undefined);
  let rows = 0;
  try {
    for await (const lines of chunks(input, kind, maxBytes)) {
      rows += lines.length;
      if (!out.write(`${lines.map((l) => JSON.stringify([l.line, l.cells])).join('\n')}\n`))
        await Promise.race([once(out, 'drain'), failed]);
    }
  } finally {
    await Promise.race([new Promise<void>((resolve) => out.end(resolve)), failed]);
  }
  return rows;
}

async function* spooled(file: string): AsyncGenerator<Line[]> {
  const lines = readline.createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity });
  let batch: Line[] = [];
  for await (const text of lines) {
    if (!text) continue;
    const [line, cells] = JSON.parse(text) as [number, Record<string, string>];
    batch.push({ line, cells });
    if (batch.length === CHUNK) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length) yield batch;
}

/**
 * Checks (and with `apply`, applies) every batch. Checking alone runs on plain reads; applying
 * runs in the caller's transaction and, once a row is bad, applies nothing more (the caller
 * rolls back) while still checking the rest, to report every bad row.
 */
async function importBatches(
  runner: Knex,
  ctx: Ctx,
  kind: ImportKind,
  batches: AsyncIterable<Line[]>,
  report: ImportReport,
  apply: boolean,
): Promise<void> {
  const tenant = await runner('tenants').where({ id: ctx.tenantId }).select('time_zone').first();
  const groups = kind === 'group-members' ? await groupsByName(runner, ctx.tenantId) : new Map();
  for await (const lines of batches) {
    report.rows += lines.length;
    const now = apply && report.errorCount === 0;
    if (kind === 'group-members') await importMembers(runner, ctx, lines, report, groups, now);
    else await importGrants(runner, ctx, lines, report, String(tenant?.time_zone ?? 'UTC'), now);
  }
}

function rejected(report: ImportReport): Unprocessable {
  return new Unprocessable('import_rejected', `${report.errorCount} bad row(s): nothing was applied`, {
    details: { report },
  });
}

/**
 * Runs an import from `input`, the upload as a stream (the seam for a request-body deadline: the
 * caller may pass any readable). Any bad row → 422 listing the bad rows, nothing applied. With
 * `dryRun` the report says what would change and nothing changes. Answers the report of an
 * applied import, or, above IMPORT_JOB_THRESHOLD_ROWS rows, the queued job that applies it.
 */
export async function runImport(
  db: Db,
  ctx: Ctx,
  p: Principal,
  kind: ImportKind,
  input: Readable,
  opts: { dryRun: boolean; maxBytes: number },
): Promise<{ report: ImportReport } | { job: Job }> {
  requireAdmin(p, 'import CSV files');
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'roster-import-'));
  try {
    const file = path.join(dir, 'rows.ndjson');
    const rows = await spool(input, kind, opts.maxBytes, file);
    const checked = newReport(kind, opts.dryRun);
    await importBatches(db.knex, ctx, kind, spooled(file), checked, false);
    if (checked.errorCount) throw rejected(checked);
    if (opts.dryRun) return { report: checked };
    if (rows <= IMPORT_JOB_THRESHOLD_ROWS) {
      const report = newReport(kind, false);
      // Reads only the local file and the database: nothing here waits on the client.
      await db.tx(async (trx) => {
        await importBatches(trx, ctx, kind, spooled(file), report, true);
        if (report.errorCount) throw rejected(report);
      });
      return { report };
    }
    return { job: await stageAndEnqueue(db, ctx, kind, file, rows) };
  } finally {
    await fs.promises.rm(dir, { recursive: true, force: true });
  }
}

/**
 * Staged rows hold up to this many CSV lines each (and about this many bytes of them), so that
 * the apply reads and drops a hundredth as many database rows.
 */
const STAGE_LINES = 100;
const STAGE_BYTES = 1024 * 1024;

function stageGroups(lines: Line[]): Line[][] {
  const groups: Line[][] = [];
  let group: Line[] = [];
  let bytes = 0;
  for (const l of lines) {
    const size = JSON.stringify(l.cells).length;
    if (group.length && (group.length === STAGE_LINES || bytes + size > STAGE_BYTES)) {
      groups.push(group);
      group = [];
      bytes = 0;
    }
    group.push(l);
    bytes += size;
  }
  if (group.length) groups.push(group);
  return groups;
}

async function stageAndEnqueue(db: Db, ctx: Ctx, kind: ImportKind, file: string, rows: number): Promise<Job> {
  const id = newId();
  try {
    let seq = 0;
    for await (const lines of spooled(file)) {
      const groups = stageGroups(lines);
      await stageJobRows(db, ctx.tenantId, id, seq, groups, ctx.now.getTime());
      seq += groups.length;
    }
    return await db.tx((trx) => enqueueJob(trx, ctx, { id, kind: `import.${kind}`, payload: { rows }, total: rows }));
  } catch (err) {
    await db.tx((trx) => dropJobRows(trx, ctx.tenantId, id)).catch(() => undefined);
    throw err;
  }
}

/**
 * The job that applies a staged import: one chunk, one transaction, so the import stays all or
 * nothing. It checks every row again against the database as it is now; a row gone bad since
 * the upload fails the job with the report, and nothing is applied. Cancellable until it
 * commits.
 */
function importJobKind(kind: ImportKind): JobKind<{ rows: number }, null, ImportReport> {
  return {
    kind: `import.${kind}`,
    cancellable: true,
    async runChunk(trx, job) {
      const report = newReport(kind, false);
      async function* staged(): AsyncGenerator<Line[]> {
        for (let after = -1; ; ) {
          const page = await readJobRows<Line[]>(trx, job.tenantId, job.id, after, CHUNK / STAGE_LINES);
          if (!page.length) return;
          yield page.flatMap((r) => r.data);
          after = page[page.length - 1]!.seq;
        }
      }
      await importBatches(trx, job.ctx, kind, staged(), report, true);
      if (report.errorCount) throw new JobFailed(`${report.errorCount} bad row(s): nothing was applied`, report);
      return { cursor: null, progress: { done: report.rows, total: report.rows }, done: true, result: report };
    },
    cleanup: (trx, job) => dropJobRows(trx, job.tenantId, job.id),
  };
}

registerJobKind(importJobKind('group-members'));
registerJobKind(importJobKind('agent-grants'));
