// The library's layers, bottom to top; an import may only point down (npm run lint checks it):
//   lib/private/       leaf helpers: import no public layer (the app model by type only)
//   lib/*.ts           the app model and what every layer shares (AppSource, IAppTier, feature flags)
//   lib/constructs/    in-stack tiers: know nothing of stages or stacks
//   lib/stages/        the stage table, the layers a stage adds and the stacks built from them
//   lib/composition/   the app-level composition of several stacks (StageStacks, MultiRegion)
//   lib/index.ts and bin/ sit on top.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'An import circle makes load order decide what a module sees.',
      severity: 'error',
      from: { path: '^lib/' },
      to: { circular: true },
    },
    {
      name: 'private-is-a-leaf',
      comment: 'lib/private holds leaf helpers: they import no construct, stage or composition.',
      severity: 'error',
      from: { path: '^lib/private/' },
      to: { path: '^lib/(constructs|stages|composition)/' },
    },
    {
      name: 'private-uses-the-app-model-by-type-only',
      comment: 'A helper may name AppSource or IAppTier as a type, never load the public module.',
      severity: 'error',
      from: { path: '^lib/private/' },
      to: { path: '^lib/[^/]+\\.ts$', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'app-model-below-constructs',
      comment: 'The app model and the shared modules at the top of lib/ are used by every layer above.',
      severity: 'error',
      from: { path: '^lib/[^/]+\\.ts$', pathNot: '^lib/index\\.ts$' },
      to: { path: '^lib/(constructs|stages|composition)/' },
    },
    {
      name: 'constructs-know-no-stages',
      comment:
        'In-stack constructs know nothing of stages, of the stacks built from them or of their composition.',
      severity: 'error',
      from: { path: '^lib/constructs/' },
      to: { path: '^lib/(stages|composition)/' },
    },
    {
      name: 'stages-below-composition',
      comment: 'A stage and its stacks know nothing of how several stacks are composed into an app.',
      severity: 'error',
      from: { path: '^lib/stages/' },
      to: { path: '^lib/composition/' },
    },
  ],
  options: {
    includeOnly: '^(lib|bin)/',
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.dev.json' },
  },
};
