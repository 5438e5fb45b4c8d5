import type { Knex } from 'knex';
import { ensureTable } from '../src/db/ensure-table.js';

export const name = '007_jobs';

// Carried here, not imported: a migration must not change when live code does.
const KIND_MAX = 64;
const KEY_MAX = 200;
const STATE_MAX = 16;
const ERROR_MAX = 1000;
const OWNER_MAX = 128;

export async function up(knex: Knex): Promise<void> {
  // Durable jobs (src/jobs/): written in the transaction of the change that causes them and run
  // chunk by chunk by a worker holding a lease, so a job survives the process that started it.
  await ensureTable(knex, 'jobs', (t) => {
    t.string('tenant_id', 36).notNullable();
    t.string('id', 36).notNullable();
    t.string('kind', KIND_MAX).notNullable();
    t.string('state', STATE_MAX).notNullable();
    // `key` is reserved in MySQL. job_key names what the job works on (`mapping_rule:<id>`);
    // active_key carries the same value only while the job is queued or running, so the unique
    // index admits one live job per key (NULLs never collide, on either dialect).
    t.string('job_key', KEY_MAX).nullable();
    t.string('active_key', KEY_MAX).nullable();
    t.text('payload_json', 'mediumtext').notNullable();
    t.text('cursor_json', 'mediumtext').nullable();
    t.bigInteger('progress_done').notNullable().defaultTo(0);
    t.bigInteger('progress_total').nullable();
    t.text('result_json', 'mediumtext').nullable();
    t.string('error', ERROR_MAX).nullable();
    // Who enqueued it: chunks act (and audit) as them.
    t.text('actor_json').notNullable();
    t.string('request_id', 128).nullable();
    t.string('lease_owner', OWNER_MAX).nullable();
    t.bigInteger('lease_until').nullable();
    t.integer('attempts').notNullable().defaultTo(0);
    t.bigInteger('created_at').notNullable();
    t.bigInteger('started_at').nullable();
    t.bigInteger('finished_at').nullable();
    t.bigInteger('updated_at').notNullable();
    t.primary(['tenant_id', 'id'], 'jobs_pk');
    t.unique(['tenant_id', 'active_key'], { indexName: 'jobs_active_key_uq' });
    t.index(['tenant_id', 'state', 'id'], 'jobs_state_idx');
    t.index(['tenant_id', 'kind', 'id'], 'jobs_kind_idx');
    // Workers look for queued jobs and expired leases across tenants.
    t.index(['state', 'lease_until'], 'jobs_claim_idx');
    // Finished jobs are dropped after a while (src/jobs/worker.ts).
    t.index(['finished_at'], 'jobs_finished_idx');
    t.foreign('tenant_id', 'jobs_tenant_fk').references('tenants.id').onDelete('CASCADE');
  });

  // Input a job works through, staged where any process can read it (e.g. a validated CSV
  // upload). Rows are written before the job row exists, hence no foreign key to jobs.
  await ensureTable(knex, 'job_rows', (t) => {
    t.string('tenant_id', 36).notNullable();
    t.string('job_id', 36).notNullable();
    t.integer('seq').notNullable();
    t.text('data_json', 'mediumtext').notNullable();
    t.bigInteger('created_at').notNullable();
    t.primary(['tenant_id', 'job_id', 'seq'], 'job_rows_pk');
    t.index(['created_at'], 'job_rows_created_idx');
    t.foreign('tenant_id', 'job_rows_tenant_fk').references('tenants.id').onDelete('CASCADE');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('job_rows');
  await knex.schema.dropTableIfExists('jobs');
}
