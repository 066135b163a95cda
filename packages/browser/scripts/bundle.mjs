// Bundles the browser node (src/join-app.ts) into dist-web/join.js for GET /join. Runs in `npm run build`.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { browserBuildOptions } from './bundle-options.mjs';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const started = Date.now();
const result = await build(browserBuildOptions(here('../src/join-app.ts'), here('../dist-web/join.js')));
// The kernels' Web Worker (compute threads of a cross-origin isolated tab), beside join.js: browser-node.ts finds it
// at new URL('./kernel-worker.js', import.meta.url).
const worker = await build(browserBuildOptions(here('../../kernels/src/kernel-worker-web.ts'), here('../dist-web/kernel-worker.js')));
const bytes = [result, worker].flatMap((r) => Object.values(r.metafile.outputs)).reduce((a, o) => a + o.bytes, 0);
console.log(`browser node bundled: dist-web/join.js and kernel-worker.js (${(bytes / 1e6).toFixed(2)} MB with maps) in ${Date.now() - started} ms`);
