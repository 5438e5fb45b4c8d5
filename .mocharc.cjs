// TypeScript runs through tsx, with no build step. Under CI, a stray `.only` fails the run.
module.exports = {
  'node-option': ['import=tsx'],
  require: ['test/support/hooks.ts'],
  spec: ['test/unit/**/*.test.ts', 'test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'],
  timeout: 30000,
  forbidOnly: Boolean(process.env.CI),
  exit: true,
};
