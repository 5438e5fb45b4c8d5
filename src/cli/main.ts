import { cli } from './roster.js';

const code = await cli(process.argv.slice(2), process.env, {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
});
process.exitCode = code;
