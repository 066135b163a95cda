import { defineConfig } from 'vitest/config';

// Two projects: in-process tests run two files at a time; cross-package tests start real node processes (several
// per file) and run one file at a time, so that on two cores a busy neighbour cannot starve their heartbeats.
const shared = {
  resolve: {
    // Workspace packages resolve to their TypeScript sources in tests (see each package.json "exports").
    conditions: ['source'],
  },
};

export default defineConfig({
  ...shared,
  test: {
    setupFiles: ['packages/node/src/polyfills.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    reporters: ['default', 'json'],
    outputFile: { json: 'test-artifacts/vitest-results.json' },
    projects: [
      {
        ...shared,
        test: {
          name: 'unit',
          include: ['packages/*/test/**/*.test.ts'],
          setupFiles: ['packages/node/src/polyfills.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          pool: 'forks',
          maxWorkers: 2,
        },
      },
      {
        ...shared,
        test: {
          name: 'cluster',
          include: ['test/**/*.test.ts'],
          setupFiles: ['packages/node/src/polyfills.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          pool: 'forks',
          fileParallelism: false,
          maxWorkers: 1,
        },
      },
    ],
  },
});
