// esbuild options for code that runs in a page (the join bundle, the kernels benchmark): Node-only modules that shared
// code imports are pointed at small browser versions in src/shims; mDNS is left out (a page cannot multicast) and
// @libp2p/tcp's own browser build throws if used (a page dials WebSockets only).
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));

export const shims = {
  'node:events': here('../src/shims/events.ts'),
  events: here('../src/shims/events.ts'),
  'node:crypto': here('../src/shims/crypto.ts'),
  'node:os': here('../src/shims/os.ts'),
  'node:path': here('../src/shims/path.ts'),
  'node:fs/promises': here('../src/shims/fs-promises.ts'),
  '@libp2p/mdns': here('../src/shims/mdns.ts'),
};

export function browserBuildOptions(entry, outfile) {
  return {
    entryPoints: [entry],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    // Workspace packages are bundled from their TypeScript sources.
    conditions: ['source', 'browser'],
    alias: shims,
    // The kernels' Node thread host imports these dynamically, only under Node; a page never evaluates them.
    external: ['node:worker_threads', 'node:module', 'node:url'],
    define: { 'process.env.NODE_ENV': '"production"', global: 'globalThis' },
    sourcemap: 'linked',
    minify: true,
    legalComments: 'none',
    metafile: true,
    logLevel: 'warning',
  };
}
