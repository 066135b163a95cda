/**
 * GET /join and its assets on a real HTTP server: served from the folders the node is given (the CLI gives the
 * browser package's), with the isolation headers; without them, or for a file that is not an asset, a clear 404.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiRouter } from '../src/api/api-router.js';
import { startApiServer, type ApiServer } from '../src/api/api-server.js';
import { addJoinPageRoutes, type JoinAssets } from '../src/api/join-page.js';

const INFO = { name: 'n1', peerId: '12D3KooWtest', wsAddresses: ['/ip4/127.0.0.1/tcp/1/ws/p2p/12D3KooWtest'], clusterKeyRequired: false };

async function serve(assets?: JoinAssets): Promise<ApiServer> {
  const router = new ApiRouter();
  addJoinPageRoutes(router, { info: () => INFO, ...(assets ? { assets } : {}) });
  return startApiServer(router, { port: 0, host: '127.0.0.1' });
}

describe('the join page routes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'join-page-'));
  let withAssets: ApiServer;
  let without: ApiServer;
  beforeAll(async () => {
    writeFileSync(join(dir, 'join.html'), '<!doctype html><title>join</title>');
    writeFileSync(join(dir, 'join.js'), 'console.log("bundle")');
    const url = pathToFileURL(`${dir}/`);
    [withAssets, without] = await Promise.all([serve({ page: new URL('join.html', url), bundleDir: url }), serve()]);
  });
  afterAll(async () => {
    await Promise.all([withAssets?.close(), without?.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the page and bundle it is given, cross-origin isolated', async () => {
    const page = await fetch(`${withAssets.url}/join`);
    expect(page.status).toBe(200);
    expect(page.headers.get('cross-origin-embedder-policy')).toBe('require-corp');
    expect(await page.text()).toContain('<title>join</title>');
    const bundle = await fetch(`${withAssets.url}/join/assets/join.js`);
    expect([bundle.status, bundle.headers.get('content-type')]).toEqual([200, 'text/javascript; charset=utf-8']);
    expect(await bundle.text()).toBe('console.log("bundle")');
    expect(await (await fetch(`${withAssets.url}/join/info`)).json()).toEqual(INFO);
  });

  it('answers 404 join_page_missing for a missing bundle file, and for a node given no assets', async () => {
    const missing = await fetch(`${withAssets.url}/join/assets/other.js`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: 'join_page_missing', message: expect.stringContaining('npm run build') });
    for (const path of ['/join', '/join/assets/join.js']) {
      const res = await fetch(`${without.url}${path}`);
      expect(res.status).toBe(404);
      expect(((await res.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: 'join_page_missing', message: expect.stringContaining('without the browser node') });
    }
    // What is not an asset's name is not looked for.
    expect((await fetch(`${withAssets.url}/join/assets/join.html`)).status).toBe(404);
  });
});
