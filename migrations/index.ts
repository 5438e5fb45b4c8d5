import type { Migration } from '../src/db/migrate.js';
import * as m001 from './001_foundation.js';

/** Every migration, in order. Both dialects run the same list. */
export const migrations: Migration[] = [m001];
