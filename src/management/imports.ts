import type { AppDeps } from '../http/deps.js';
import { IMPORT_JOB_THRESHOLD_ROWS, runImport, type ImportKind } from '../provisioning/csv-import.js';
import { bodyDeadline, isJsonContentType } from '../http/body.js';
import { UnsupportedMediaType } from '../errors.js';
import type { Api } from './api.js';
import { jobRef } from './jobs.js';

/** CSV files are streamed, never buffered, so their limit is far above the JSON body limit. */
const IMPORT_MAX_BYTES = 200 * 1024 * 1024;

export function registerImports(api: Api, deps: AppDeps): void {
  const report = api.schema('ImportReport', {
    type: 'object',
    required: ['kind', 'dryRun', 'rows', 'added', 'unchanged', 'errors', 'errorCount'],
    properties: {
      kind: { enum: ['group-members', 'agent-grants'] },
      dryRun: { type: 'boolean' },
      rows: { type: 'integer' },
      added: { type: 'integer', description: 'Memberships or grants added (or, in a dry run, that would be)' },
      unchanged: { type: 'integer', description: 'Rows that were already true' },
      errors: {
        type: 'array',
        items: {
          type: 'object',
          required: ['line', 'reason'],
          properties: { line: { type: 'integer' }, reason: { type: 'string' } },
        },
      },
      errorCount: { type: 'integer' },
    },
  });
  const kinds: [ImportKind, string, string][] = [
    [
      'group-members',
      'Add users to groups from CSV',
      'Columns `Name,Email,Group` (header required): users by email, groups by name.',
    ],
    [
      'agent-grants',
      'Grant agents to groups from CSV',
      "Columns `AgentId,GroupId,Permission,StartDate,EndDate` (Permission VIEW_AND_USE or EDIT; dates YYYY-MM-DD, optional; an optional TimeZone column, default the tenant's).",
    ],
  ];
  for (const [kind, summary, columns] of kinds) {
    api.add({
      method: 'post',
      path: `/imports/${kind}`,
      operationId: kind === 'group-members' ? 'importGroupMembers' : 'importAgentGrants',
      summary,
      description:
        `${columns} The file is read and checked whole before anything is applied. Any bad row → 422 listing every bad row with its line, and nothing applied. ` +
        `\`dryRun=true\` reports what would change and changes nothing. A file of more than ${IMPORT_JOB_THRESHOLD_ROWS} rows is applied by a job: 202 with the job, ` +
        'whose result is the report once it has succeeded (`GET /api/v1/jobs/{id}`); still all or nothing, and cancellable until it applies.',
      tag: 'Import',
      query: { properties: { dryRun: { type: 'boolean', default: false } } },
      rawBody: { contentType: 'text/csv', description: columns },
      responses: {
        200: { description: 'Applied (or, in a dry run, checked)', schema: report },
        202: {
          description: `More than ${IMPORT_JOB_THRESHOLD_ROWS} rows, all checked: a job applies them`,
          schema: jobRef,
        },
      },
      handler: async (req, res, { query }) => {
        if (
          isJsonContentType(req.get('content-type')) ||
          !/^text\/(csv|plain)\b/i.test(req.get('content-type') ?? '')
        ) {
          throw new UnsupportedMediaType('unsupported_media_type', 'send the file as text/csv');
        }
        // The whole file within REQUEST_BODY_TIMEOUT_MS (408 otherwise), read before any database work.
        const upload = bodyDeadline(req, deps.config.requestBodyTimeoutMs);
        const outcome = await runImport(deps.db, req.ctx!, req.principal!, kind, upload, {
          dryRun: (query as { dryRun: boolean }).dryRun,
          maxBytes: IMPORT_MAX_BYTES,
        });
        if ('job' in outcome) res.status(202).json(outcome.job);
        else res.json(outcome.report);
      },
    });
  }
}
