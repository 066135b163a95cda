/**
 * Where this package's page and bundle are on disk, for the node that serves them at GET /join (the CLI passes them
 * to the node's routes). The same from src/ and dist/: both sit beside web/ and dist-web/. Imports nothing, so a Node
 * process loads it without the browser node's runtime.
 */
export const BROWSER_NODE_ASSETS = {
  /** The join page (web/join.html). */
  page: new URL('../web/join.html', import.meta.url),
  /** The bundle `npm run build` writes (dist-web/join.js, kernel-worker.js and their maps). */
  bundleDir: new URL('../dist-web/', import.meta.url),
};
