#!/usr/bin/env node
// Thin launcher: the compiled CLI lives in dist/ (run `npm run build` first).
import('../dist/main.js').catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/main.js')) {
    console.error('edge-node: the CLI is not built yet. Run `npm run build` in the repository root.');
    process.exit(1);
  }
  throw err;
});
