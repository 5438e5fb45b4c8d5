// A Roster process that also knows the test job kinds (test/support/jobs.ts): for tests that
// kill and restart processes in the middle of a job. Started with startRoster(env, this file).
import { useTestJobKinds } from './jobs.js';

useTestJobKinds();
await import('../../src/main.js');
