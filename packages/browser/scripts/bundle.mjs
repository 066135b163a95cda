// Bundles the browser node (src/join-app.ts) into dist-web/join.js for GET /join. Runs in `npm run build`.
// Node-only modules that shared code imports are pointed at small browser versions in src/shims; TCP and mDNS are
// left out (a page dials WebSockets only; @libp2p/tcp's own browser build throws if used).
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const shims = {
  'node:events': here('../src/shims/events.ts'),
  events: here('../src/shims/events.ts'),
  'node:crypto': here('../src/shims/crypto.ts'),
  'node:os': here('../src/shims/os.ts'),
  'node:path': here('../src/shims/path.ts'),
  'node:fs/promises': here('../src/shims/fs-promises.ts'),
  '@libp2p/mdns': here('../src/shims/mdns.ts'),
};

const started = Date.now();
const result = await build({
  entryPoints: [here('../src/join-app.ts')],
  outfile: here('../dist-web/join.js'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  // Workspace packages are bundled from their TypeScript sources.
  conditions: ['source', 'browser'],
  alias: shims,
  define: { 'process.env.NODE_ENV': '"production"', global: 'globalThis' },
  sourcemap: 'linked',
  minify: true,
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
});
const bytes = Object.values(result.metafile.outputs).reduce((a, o) => a + o.bytes, 0);
console.log(`browser node bundled: dist-web/join.js (${(bytes / 1e6).toFixed(2)} MB with its map) in ${Date.now() - started} ms`);
