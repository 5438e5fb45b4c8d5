import type { Migration } from '../src/db/migrate.js';
import * as m001 from './001_foundation.js';
import * as m002 from './002_directory.js';
import * as m003 from './003_access.js';
import * as m004 from './004_workspace.js';
import * as m005 from './005_sso.js';
import * as m006 from './006_mapping.js';
import * as m007 from './007_jobs.js';
import * as m008 from './008_rule_versions.js';
import * as m009 from './009_sso_bindings.js';

/** Every migration, in order. Both dialects run the same list. */
export const migrations: Migration[] = [m001, m002, m003, m004, m005, m006, m007, m008, m009];
