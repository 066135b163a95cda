// The layer rules of docs/architecture.md, checked by `npm run check:layers` (in .ci/run before the tests).
// TypeScript 7 is the native compiler without the JS compiler API dependency-cruiser's `tsc` parser needs, so the
// sources are parsed with swc (@swc/core, a devDependency).

/** packages/node/src folders, lowest first: each may import only the ones before it (docs/architecture.md). */
const NODE_LAYERS = ['model', 'tokenizer', 'grammar', 'engine', 'training', 'network', 'cluster', 'weights', 'pipeline', 'api'];

/** Workspace packages, lowest first, and the ones each may import. */
const PACKAGES = {
  kernels: [],
  partitioner: [],
  node: ['kernels', 'partitioner'],
  testkit: ['kernels', 'node'],
  cli: ['kernels', 'partitioner', 'node', 'testkit', 'browser'],
  browser: ['kernels', 'node'],
};

const layerRules = NODE_LAYERS.slice(0, -1).map((layer, i) => ({
  name: `node-layer-${layer}`,
  comment: `packages/node/src/${layer}/ may import only the layers below it (${NODE_LAYERS.slice(0, i).join(', ') || 'none'}), never ${NODE_LAYERS.slice(i + 1).join(', ')}: see docs/architecture.md`,
  severity: 'error',
  from: { path: `^packages/node/src/${layer}/` },
  to: { path: `^packages/node/src/(${NODE_LAYERS.slice(i + 1).join('|')})/` },
}));

const packageRules = Object.entries(PACKAGES).map(([pkg, allowed]) => {
  const others = Object.keys(PACKAGES).filter((p) => p !== pkg && !allowed.includes(p));
  return {
    name: `package-order-${pkg}`,
    comment: `packages/${pkg} may import ${allowed.length ? allowed.join(', ') : 'no other workspace package'}, not ${others.join(', ')}`,
    severity: 'error',
    from: { path: `^packages/${pkg}/src/` },
    to: { path: `^packages/(${others.join('|')})/` },
  };
});

module.exports = {
  forbidden: [
    ...layerRules,
    ...packageRules,
    {
      name: 'no-testkit-in-runtime',
      comment: '@edge-node/testkit (synthetic models for tests and benchmarks) is not shipped: the runtime packages never import it (the CLI only lazily, for --model synthetic:PRESET)',
      severity: 'error',
      from: { path: '^packages/(kernels|partitioner|node|browser)/src/' },
      to: { path: '^packages/testkit/' },
    },
    {
      name: 'no-circular',
      comment: 'a module never reaches itself again through the imports that run (type-only imports are erased by the compiler, so two files may name each other\'s types)',
      severity: 'error',
      from: {},
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
  ],
  options: {
    parser: 'swc',
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(dist|dist-web|node_modules)/' },
    enhancedResolveOptions: {
      // Workspace packages resolve to their TypeScript sources, as in the tests (each package.json's "exports").
      conditionNames: ['source', 'import', 'default'],
      exportsFields: ['exports'],
      extensions: ['.ts', '.js', '.mjs'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
