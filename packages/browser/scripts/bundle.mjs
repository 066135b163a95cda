// Bundles the browser node (src/join-app.ts) into dist-web/join.js for GET /join. Runs in `npm run build`.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { browserBuildOptions } from './bundle-options.mjs';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const started = Date.now();
const result = await build(browserBuildOptions(here('../src/join-app.ts'), here('../dist-web/join.js')));
const bytes = Object.values(result.metafile.outputs).reduce((a, o) => a + o.bytes, 0);
console.log(`browser node bundled: dist-web/join.js (${(bytes / 1e6).toFixed(2)} MB with its map) in ${Date.now() - started} ms`);
