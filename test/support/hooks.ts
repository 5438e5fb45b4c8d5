import { dropTestDatabases } from './db.js';

/** Mocha root hooks: the run's databases are dropped once every suite is done. */
export const mochaHooks = {
  async afterAll(this: unknown) {
    await dropTestDatabases();
  },
};
