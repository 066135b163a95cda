import { readFile } from 'node:fs/promises';
import { KERNEL_RELAXED_UNSHARED_WASM_URL, KERNEL_RELAXED_WASM_URL, KERNEL_UNSHARED_WASM_URL, KERNEL_WASM_URL } from '@edge-node/kernels';
import type { ApiRouter } from './api-router.js';
import { OpenAIError } from './openai-errors.js';

/** What the join page needs to dial this node; served at GET /join/info (no secret in it). */
export interface JoinInfo {
  name: string;
  peerId: string;
  /** This node's WebSocket multiaddrs (ending in /p2p/<id>): the only ones a page can dial. */
  wsAddresses: string[];
  /** Whether the cluster has a key: the page then asks for it (it never comes from the server). */
  clusterKeyRequired: boolean;
}

/** Where the browser node's page and bundle are (packages/browser's BROWSER_NODE_ASSETS, given by the CLI). */
export interface JoinAssets {
  /** The join page (join.html). */
  page: URL;
  /** The folder of the bundle (join.js, kernel-worker.js and their maps). */
  bundleDir: URL;
}

export interface JoinPageOptions {
  info: () => JoinInfo;
  /** Without them GET /join and its assets answer 404 join_page_missing (a node started without the browser node). */
  assets?: JoinAssets;
}

/**
 * The page and bundle of a browser node (packages/browser, bundled by `npm run build`), served with the cross-origin
 * isolation headers a page needs for the kernels' shared WebAssembly memory (and, later, Web Worker threads).
 */
const ISOLATION = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
  'cross-origin-resource-policy': 'same-origin',
};

const ASSET_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

export function addJoinPageRoutes(router: ApiRouter, options: JoinPageOptions): void {
  const cache = new Map<string, Buffer>();
  const load = async (file: string | URL, what: string): Promise<Buffer> => {
    const key = file.toString();
    let body = cache.get(key);
    if (!body) {
      try {
        body = await readFile(file);
      } catch (err) {
        throw new OpenAIError(
          404,
          `the browser node's ${what} is missing from this installation (${(err as Error).message}); run \`npm run build\``,
          'invalid_request_error',
          'join_page_missing',
        );
      }
      cache.set(key, body);
    }
    return body;
  };
  const assets = (): JoinAssets => {
    if (!options.assets) throw new OpenAIError(404, 'this node was started without the browser node\'s page (`edge-node start` serves it)', 'invalid_request_error', 'join_page_missing');
    return options.assets;
  };
  const send = (res: import('node:http').ServerResponse, body: Buffer, type: string) => {
    res.writeHead(200, { 'content-type': type, 'content-length': body.length, 'cache-control': 'no-cache', ...ISOLATION });
    res.end(body);
  };

  router.add('GET', '/join', async (_req, res) => send(res, await load(assets().page, 'page'), 'text/html; charset=utf-8'), { public: true });
  router.add('GET', '/join/info', (_req, res) => {
    const text = JSON.stringify(options.info());
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...ISOLATION });
    res.end(text);
  }, { public: true });
  router.add(
    'GET',
    '/join/assets/:file',
    async (_req, res, ctx) => {
      const file = ctx.params.file ?? '';
      const ext = file.slice(file.lastIndexOf('.'));
      if (!/^[\w.-]+$/.test(file) || !(ext in ASSET_TYPES)) throw new OpenAIError(404, `no asset ${file}`, 'invalid_request_error', 'not_found');
      send(res, await load(new URL(file, assets().bundleDir), `bundle (${file})`), ASSET_TYPES[ext]);
    },
    { public: true },
  );
  // The bundle finds the kernels at new URL('../wasm/kernels.wasm', import.meta.url), as the kernels package does.
  // A page that is not cross-origin isolated (plain http from another device) takes the unshared build; a browser
  // whose relaxed SIMD passes the kernels' probe (Chromium ≥ 114) the relaxed one.
  for (const url of [KERNEL_WASM_URL, KERNEL_UNSHARED_WASM_URL, KERNEL_RELAXED_WASM_URL, KERNEL_RELAXED_UNSHARED_WASM_URL]) {
    const name = url.pathname.slice(url.pathname.lastIndexOf('/') + 1);
    router.add('GET', `/join/wasm/${name}`, async (_req, res) => send(res, await load(url, 'kernels'), 'application/wasm'), { public: true });
  }
}
