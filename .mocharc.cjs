// TypeScript runs through tsx, with no build step. Under CI, a stray `.only` fails the run.
module.exports = {
  'node-option': ['import=tsx'],
  require: ['test/support/hooks.ts'],
  timeout: 30000,
  forbidOnly: Boolean(process.env.CI),
  exit: true,
};
