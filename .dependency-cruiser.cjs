/**
 * The layer rules of ARCHITECTURE.md, checked by `npm run lint:deps` (part of `npm test`).
 * Type-only imports count: a type import is still a dependency on the module that declares it.
 */

// Parts by layer, top to bottom. An import may go down or stay inside its own part, never up.
const foundation = '^src/(errors|log|context|stream)\\.ts$|^src/(config|text)/';
const db = '^src/db/';
const domain = ['access', 'connections', 'mapping', 'directory', 'tenants', 'jobs', 'mail', 'audit'];
const commands = '^src/provisioning/';
const http = '^src/http/';
const edges = '^src/(scim|sso|management|console)/';
const root = '^src/(app|main)\\.ts$|^src/cli/';
const anyDomain = `^src/(${domain.join('|')})/`;

// Subfolders that are a part's public face rather than its internals. directory/model is the
// stored SCIM document (attribute definitions, normalisation, case-folded keys): the directory
// stores it, commands and the SCIM edge read and write it.
const publicFolders = ['^src/directory/model/'];

// Known violations: { rule, from: a file, to: [files], why: the issue-13 item that removes it }.
// Each exempts exactly those imports; any other import of that file is still checked. Empty is
// the goal of issue 13.
const patch = (f) => `src/scim/patch/${f}.ts`;
const exceptions = [
  // The SCIM commands apply a PATCH with the edge's planner (review §3.1's bounce). Removed by
  // issue 13 §1/§2: PATCH application on a stored document joins directory/model, the commands
  // call it there.
  ...['commands-not-upward', 'no-internals'].flatMap((rule) => [
    { rule, from: 'src/provisioning/scim-users.ts', to: [patch('parse'), patch('apply-user')] },
    { rule, from: 'src/provisioning/scim-groups.ts', to: [patch('parse'), patch('group')] },
  ]),
];

const exact = (file) => `^${file.replaceAll('.', '\\.')}$`;
const list = (x) => (x === undefined ? [] : [x].flat());

/** A rule, and beside it the same rule for each file with a known violation, minus that import. */
function rule(name, comment, from, to) {
  const known = exceptions.filter((e) => e.rule === name);
  const base = { name, comment, severity: 'error' };
  return [
    { ...base, from: { ...from, pathNot: [...list(from.pathNot), ...known.map((e) => exact(e.from))] }, to },
    ...known.map((e) => ({
      ...base,
      from: { ...from, path: `(?=${exact(e.from)})${from.path ?? ''}` },
      to: { ...to, pathNot: [...list(to.pathNot), ...e.to.map(exact)] },
    })),
  ];
}

/** Within the domain, a part imports only the parts listed after it in `domain`. */
const domainOrder = domain.slice(1).flatMap((part, i) =>
  rule(
    `domain-order-${part}`,
    `${part} is below ${domain.slice(0, i + 1).join(', ')}`,
    { path: `^src/${part}/` },
    { path: `^src/(${domain.slice(0, i + 1).join('|')})/` },
  ),
);

module.exports = {
  forbidden: [
    ...rule('no-circular', 'a cycle makes two modules one', {}, { circular: true }),
    ...rule(
      'foundation-imports-foundation',
      'errors, log, context, stream, config and text are imported by everyone, so they import only each other',
      { path: foundation },
      { path: '^src/', pathNot: foundation },
    ),
    ...rule(
      'db-imports-nothing-above',
      'db knows SQL and dialects, nothing of the parts that use it',
      { path: db },
      { path: '^src/', pathNot: `${foundation}|${db}` },
    ),
    ...rule(
      'domain-not-upward',
      'the domain never calls commands, the HTTP toolkit, a protocol edge or the composition root',
      { path: anyDomain },
      { path: `${commands}|${http}|${edges}|${root}` },
    ),
    ...domainOrder,
    ...rule(
      'commands-not-upward',
      'commands are called by edges and jobs; they never call back up into them',
      { path: commands },
      { path: `${http}|${edges}|${root}` },
    ),
    ...rule(
      'http-not-upward',
      'the HTTP toolkit serves the edges and never imports one',
      { path: http },
      { path: `${edges}|${root}` },
    ),
    ...rule(
      'edges-not-sideways',
      'a protocol edge never imports another edge: what two edges share lives in a command or the domain',
      { path: '^src/(scim|sso|management|console)/' },
      { path: edges, pathNot: '^src/$1/' },
    ),
    ...rule(
      'edges-not-upward',
      'only the composition root (app.ts, main.ts, cli/) knows every part',
      { path: edges },
      { path: root },
    ),
    ...rule(
      'no-internals',
      'a subfolder of a part is private to that part, unless listed in publicFolders',
      { path: '^(src/[^/]+/|src/[^/]+\\.ts$|migrations/)' },
      { path: '^src/[^/]+/[^/]+/', pathNot: ['^$1', ...publicFolders] },
    ),
    ...rule(
      'migrations-are-frozen',
      'a migration runs the same forever, so it imports only the schema helpers and other migrations',
      { path: '^migrations/' },
      { path: '^src/', pathNot: '^src/db/ensure-table\\.ts$' },
    ),
  ],
  options: {
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|dist)/' },
  },
};
