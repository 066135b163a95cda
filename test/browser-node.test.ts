/**
 * A browser tab as a full node (issue 14), in real Chromium (Debian's, through playwright-core): two Node nodes of a
 * private cluster and a tab opened at GET /join with the cluster key in the URL fragment. The forced split puts the tab
 * in the middle of the ring (n1 [0,2) → tab [2,4) → n3 [4,5)), so activations cross it both ways. The answer through
 * the three equals the single-node answer; a reload fetches nothing (IndexedDB); closing the tab mid-answer is survived
 * by the replay with the same text; a tab without the key, or with another key, is refused. Figures (the tab's kernels
 * against Node's, time to join and to fetch its layers) go to test-artifacts/browser-node/figures.json.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CLI_BIN, ClusterHarness, type RunningNode } from './support/cluster-harness.js';
import { STORIES_GGUF } from './support/single-device-run.js';

const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const TAB = 'n2-tab';
const PROMPT = { prompt: 'Once upon a time', max_tokens: 120, temperature: 0 };

interface TabStatus {
  peerId: string;
  layers: { start: number; end: number }[];
  cachedBytes: number;
  cachedTensors: number;
  weights: { fetchedTensors: number; fetchedBytes: number; reusedTensors: number; reusedBytes: number } | null;
  tokensTotal: number;
  profile: { runtime: string; gflopsDecode: number; gflopsPrefill: number; threads: number; isa: string };
  members: { name: string; runtime: string }[];
  timings: { measuredMs: number; joinedMs: number; manifestMs: number | null; layersLoadedMs: number | null; layersLoadMs: number | null };
}
interface TabApi {
  state: string;
  error: string | null;
  status: TabStatus | null;
  crossOriginIsolated: boolean;
}
interface ClusterJson {
  self: { profile: { gflopsDecode: number; gflopsPrefill: number; isa: string; threads: number } };
  peers: { name: string; peerId: string; profile: { runtime: string; gflopsDecode: number }; stageInfo: { model?: string } | null }[];
  plan: { stages?: { name: string; startLayer: number; endLayer: number }[] } | null;
}

const tab = (page: Page) => page.evaluate(() => (globalThis as unknown as { edgeNode: TabApi }).edgeNode);

describe('a browser tab as a node of the cluster', () => {
  const h = new ClusterHarness('browser-node');
  const key = join(h.tempDir, 'cluster.key');
  let browser: Browser;
  let n1: RunningNode;
  let n3: RunningNode;
  let single = '';
  const figures: Record<string, unknown> = {};
  const tabLog = join(h.artifactsDir, 'tab.log');

  const nodeArgs = () => ['--model', STORIES_GGUF, '--split', '2,2,1', '--no-mdns', '--cluster-key', key, '--listen', '/ip4/127.0.0.1/tcp/0/ws'];
  const cluster = async () => (await (await fetch(`${n1.apiUrl}/v1/cluster`)).json()) as ClusterJson;
  const complete = async () => (await n1.complete(PROMPT)).choices[0].text;
  const pages: Page[] = [];
  const pageErrors: string[] = [];
  const openTab = async (fragment: string): Promise<Page> => {
    const page = await browser.newPage();
    pages.push(page);
    // The tab's log (its console) goes to test-artifacts/browser-node/tab.log.
    page.on('console', (m) => appendFileSync(tabLog, `${m.text()}\n`));
    page.on('pageerror', (e) => {
      pageErrors.push(e.message);
      appendFileSync(tabLog, `page error: ${e.message}\n`);
    });
    await page.goto(`${n1.apiUrl}/join?name=${TAB}&memory=256${fragment}`);
    return page;
  };

  beforeAll(async () => {
    writeFileSync(tabLog, '');
    execFileSync(process.execPath, [CLI_BIN, 'keygen', key]);
    [n1, browser] = await Promise.all([
      h.startNode({ name: 'n1', args: nodeArgs() }),
      chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_FLAGS }),
    ]);
    // The reference: the same request on one node holding every layer (the split needs three nodes).
    single = await complete();
    expect(single.length).toBeGreaterThan(20);
    n3 = await h.startNode({ name: 'n3', args: [...nodeArgs(), '--bootstrap', n1.addresses[0]] });
    await h.waitFor(async () => (await cluster()).peers.some((p) => p.name === 'n3' && p.stageInfo?.model), 15_000, 'n1 to see n3 with the model');
  }, 90_000);
  // A test that fails leaves no tab behind for the next one.
  afterEach(async () => {
    await Promise.all(pages.splice(0).map((p) => p.close().catch(() => {})));
    // No uncaught error in any tab (an uncaught error in libp2p's event handlers once came from pnet's cipher).
    expect(pageErrors.splice(0)).toEqual([]);
  });
  afterAll(async () => {
    writeFileSync(join(h.artifactsDir, 'figures.json'), JSON.stringify(figures, null, 2));
    await browser?.close();
    await h.cleanup();
  });

  it('joins from /join, takes its layers from the plan and answers like one node; a reload downloads nothing', async () => {
    const hex = execFileSync('tail', ['-n1', key]).toString().trim();
    const opened = performance.now();
    const page = await openTab(`#key=${hex}`);
    await h.waitFor(async () => (await tab(page)).state === 'joined', 20_000, 'the tab to join');
    // The key left the address bar (and never reached the server: it is a fragment).
    expect(page.url()).not.toContain('key=');
    const t = await tab(page);
    expect(t.crossOriginIsolated).toBe(true);
    // The cluster sees it: a member with runtime "browser" that has the model.
    await h.waitFor(async () => (await cluster()).peers.some((p) => p.name === TAB && p.profile.runtime === 'browser' && p.stageInfo?.model), 15_000, 'n1 to see the tab with the model');

    // Plain decoding: with speculation the tab would also compute drafted rows the last stage rejects (counted below).
    const threeWay = await n1.complete({ ...PROMPT, speculate: false });
    expect(threeWay.choices[0].text).toBe(single);
    const plan = (await cluster()).plan;
    expect(plan?.stages?.map((s) => `${s.name}[${s.startLayer},${s.endLayer})`)).toEqual(['n1[0,2)', `${TAB}[2,4)`, 'n3[4,5)']);
    // Every row of the request passed through the tab: the prompt, then each generated token but the last.
    const rows = threeWay.usage.prompt_tokens + threeWay.usage.completion_tokens - 1;
    await h.waitFor(async () => (await tab(page)).status?.tokensTotal === rows, 5000, `the page to count the ${rows} rows its stage computed`);
    const s = (await tab(page)).status!;
    expect(s.layers).toEqual([{ start: 2, end: 4 }]);
    // The stage said when its first layers were in (after the manifest), and how long their load took.
    expect(s.timings.layersLoadedMs).toBeGreaterThan(s.timings.manifestMs!);
    expect(s.timings.layersLoadMs).toBeGreaterThan(0);
    expect(s.timings.layersLoadMs).toBeLessThan(s.timings.layersLoadedMs!);
    // Only its two layers' tensors (9 per layer) came from peers, all now in IndexedDB.
    expect(s.weights).toMatchObject({ fetchedTensors: 18, reusedTensors: 0 });
    expect(s.cachedTensors).toBe(18);
    expect(s.cachedBytes).toBe(s.weights!.fetchedBytes);
    expect(s.members.map((m) => `${m.name}:${m.runtime}`).sort()).toEqual(['n1:node', `${TAB}:browser`, 'n3:node']);
    // Chromium passes the relaxed-SIMD probe, and an isolated page computes on every core (Web Worker threads).
    const cores = await page.evaluate(() => navigator.hardwareConcurrency);
    expect([s.profile.isa, s.profile.threads]).toEqual(['relaxed-simd', cores]);
    const c = await cluster();
    figures.first = {
      tabKernels: s.profile,
      nodeKernels: c.self.profile,
      decodeRatio: s.profile.gflopsDecode / c.self.profile.gflopsDecode,
      prefillRatio: s.profile.gflopsPrefill / c.self.profile.gflopsPrefill,
      pageTimings: s.timings,
      openToJoinedMs: performance.now() - opened,
      weights: s.weights,
    };

    // A reload is a new node (new peer id) that finds its layers in IndexedDB.
    await page.reload();
    await h.waitFor(async () => (await tab(page)).state === 'joined' || (await tab(page)).state === 'serving', 20_000, 'the reloaded tab to join');
    const tabs = async () => (await cluster()).peers.filter((p) => p.name === TAB);
    await h.waitFor(async () => (await tabs()).length === 1 && (await tabs())[0].peerId !== s.peerId && (await tabs())[0].stageInfo?.model !== undefined, 15_000, 'the old tab to be gone and the new one to have the model');
    expect(await complete()).toBe(single);
    await h.waitFor(async () => ((await tab(page)).status?.layers.length ?? 0) > 0, 5000, 'the reloaded tab to show its layers');
    const r = (await tab(page)).status!;
    expect(r.weights).toMatchObject({ fetchedTensors: 0, reusedTensors: 18 });
    figures.reload = { pageTimings: r.timings, weights: r.weights };

    // What the page shows, then Leave: the tab says goodbye and the cluster drops it at once (no failure timeout).
    expect(await page.locator('#layers').textContent()).toBe('[2, 4)');
    expect(await page.locator('#members tr').count()).toBe(3);
    await page.screenshot({ path: join(h.artifactsDir, 'join-page.png'), fullPage: true });
    const leftAt = performance.now();
    await page.click('#leave');
    await h.waitFor(async () => (await tab(page)).state === 'left', 5000, 'the page to leave');
    await h.waitFor(async () => !(await cluster()).peers.some((p) => p.name === TAB), 5000, 'n1 to drop the tab that left');
    figures.leaveToDroppedMs = performance.now() - leftAt;
    await page.close();
  });

  it('survives the tab closed mid-answer with the same text', async () => {
    const hex = execFileSync('tail', ['-n1', key]).toString().trim();
    const page = await openTab(`#key=${hex}`);
    await h.waitFor(async () => (await cluster()).peers.some((p) => p.name === TAB && p.profile.runtime === 'browser' && p.stageInfo?.model), 20_000, 'the tab to join');
    // Warm the plan with the tab in it, then stream and close the tab after a few tokens.
    expect(await complete()).toBe(single);
    expect((await tab(page)).status?.layers).toEqual([{ start: 2, end: 4 }]);
    const res = await fetch(`${n1.apiUrl}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...PROMPT, model: await n1.modelId(), stream: true }) });
    expect(res.status).toBe(200);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    let chunks = 0;
    let closedAt = -1;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      for (const line of value.split('\n')) {
        if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
        const json = JSON.parse(line.slice(6)) as { choices?: { text: string }[] };
        text += json.choices?.[0]?.text ?? '';
        if (++chunks === 8) {
          closedAt = text.length;
          await page.close();
        }
      }
    }
    expect(closedAt).toBeGreaterThan(0);
    expect(closedAt).toBeLessThan(single.length);
    expect(text).toBe(single);
    expect(n1.output()).toMatch(new RegExp(`recovered from the loss of ${TAB} in \\d+ ms`));
  });

  it('joins from a page that is not cross-origin isolated (plain http to a LAN name, as a phone would) with the unshared kernels', async () => {
    // Chromium maps phone-lan.test to loopback; http to a name that is not localhost is not a secure context, so the
    // page has no SharedArrayBuffer and the kernels run on a plain memory.
    const lan = await chromium.launch({ executablePath: '/usr/bin/chromium', args: [...CHROMIUM_FLAGS, '--host-resolver-rules=MAP phone-lan.test 127.0.0.1'] });
    try {
      const page = await lan.newPage();
      page.on('console', (m) => appendFileSync(tabLog, `[lan] ${m.text()}\n`));
      const hex = execFileSync('tail', ['-n1', key]).toString().trim();
      await page.goto(`${n1.apiUrl.replace('127.0.0.1', 'phone-lan.test')}/join?name=${TAB}&memory=256#key=${hex}`);
      await h.waitFor(async () => (await tab(page)).state === 'joined', 20_000, 'the LAN tab to join');
      expect(await page.evaluate(() => [globalThis.isSecureContext, globalThis.crossOriginIsolated, typeof SharedArrayBuffer])).toEqual([false, false, 'undefined']);
      await h.waitFor(async () => (await cluster()).peers.some((p) => p.name === TAB && p.profile.runtime === 'browser' && p.stageInfo?.model), 15_000, 'n1 to see the LAN tab with the model');
      // The plan is made at a request. On a loaded machine a member can miss heartbeats and rejoin seconds later (a
      // stage computing a replay blocks its event loop: issue 21), and a request meanwhile gets a plan without the
      // tab; so ask, with the same text each time, until the plan in force has the tab in it.
      await h.waitFor(
        async () => {
          expect(await complete()).toBe(single);
          return (await cluster()).plan?.stages?.some((s) => s.name === TAB) ?? false;
        },
        20_000,
        'a plan with the LAN tab in it',
      );
      await h.waitFor(async () => ((await tab(page)).status?.layers.length ?? 0) > 0, 5000, 'the LAN tab to show its layers');
      expect((await tab(page)).status?.layers).toEqual([{ start: 2, end: 4 }]);
      // No shared memory over plain http: one thread, the unshared relaxed build (the probe runs on it).
      expect([(await tab(page)).status?.profile.isa, (await tab(page)).status?.profile.threads]).toEqual(['relaxed-simd', 1]);
    } finally {
      await lan.close();
    }
    await h.waitFor(async () => !(await cluster()).peers.some((p) => p.name === TAB), 10_000, 'the LAN tab to be gone');
  });

  it('refuses a tab without the cluster key, and one with another key', async () => {
    const before = (await cluster()).peers.length;
    const page = await openTab('');
    await h.waitFor(async () => (await tab(page)).state === 'needs-key', 10_000, 'the page to ask for the key');
    await page.click('#join');
    await h.waitFor(async () => (await tab(page)).state === 'refused', 20_000, 'the keyless tab to be refused');
    expect((await tab(page)).error).toMatch(/refused the connection .*this cluster is private/);

    await page.fill('#key', 'ab'.repeat(32));
    await page.click('#join');
    await h.waitFor(async () => (await tab(page)).error?.includes('is not this cluster') === true, 20_000, 'the tab with another key to be refused');
    expect((await tab(page)).state).toBe('refused');
    expect((await cluster()).peers.length).toBe(before);
    expect((await cluster()).peers.some((p) => p.profile.runtime === 'browser')).toBe(false);
    await page.close();
  });
});
