import { knexConfig } from './src/db/knex.js';

/**
 * For ad-hoc use of the knex CLI. Roster itself runs migrations programmatically (at start and
 * through `roster migrate`), from the ordered list in migrations/index.ts.
 */
export default knexConfig(process.env.DATABASE_URL ?? 'sqlite:./data/roster.sqlite');
