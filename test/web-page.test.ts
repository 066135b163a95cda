/**
 * The page a node serves at `/`, in headless Chromium (Debian's chromium driven by playwright-core): a chat message
 * gets a streamed answer, and the cluster view lists both nodes with their layer ranges; a fine-tuning job's loss
 * curve is drawn. The screenshots are kept in test-artifacts/web-page.png and web-page-finetune.png.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterHarness, REPO_ROOT } from './support/cluster-harness.js';
import { startApiCluster, type ApiCluster } from './support/api-cluster.js';

const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

describe('web page at / on a 2-node cluster', () => {
  const h = new ClusterHarness('web-page');
  let c: ApiCluster;
  let browser: Browser;
  beforeAll(async () => {
    [c, browser] = await Promise.all([startApiCluster(h), chromium.launch({ executablePath: process.env.EDGE_NODE_CHROMIUM ?? '/usr/bin/chromium', args: CHROMIUM_FLAGS })]);
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await h.cleanup();
  });

  it('streams a chat answer and shows both nodes with their layer ranges', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(c.a.apiUrl);
    await expect.poll(() => page.locator('#model-id').textContent(), { timeout: 10_000 }).toBe(`model ${c.modelId}`);

    // Record every text the answer bubble shows while it streams.
    await page.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { seen: string[] }).seen = seen;
      new MutationObserver(() => {
        const m = document.querySelector('[data-testid="assistant-message"]');
        if (m && m.textContent && seen.at(-1) !== m.textContent) seen.push(m.textContent);
      }).observe(document.getElementById('messages')!, { childList: true, subtree: true, characterData: true });
    });
    await page.fill('#max-tokens', '100');
    await page.fill('#temperature', '0');
    await page.fill('#prompt', 'Tell me a story about a cat.');
    await page.click('#send');
    const answer = page.locator('[data-testid="assistant-message"]');
    await expect.poll(() => answer.getAttribute('data-done'), { timeout: 20_000 }).toBe('true');
    const text = (await answer.textContent()) ?? '';
    expect(text).toMatch(/\d+ tokens in \d+\.\d+ s/);
    const seen = await page.evaluate(() => (window as unknown as { seen: string[] }).seen);
    // Streamed: the bubble showed growing prefixes of the final answer before it was complete (an answer sent whole
    // shows none). Not many: speculation verifies several tokens a walk, and a loaded machine delivers several events
    // a frame (CI once saw 2 of a 100-token answer).
    const partial = seen.filter((s) => s.length > 0 && !/tokens in/.test(s));
    expect(partial.length).toBeGreaterThan(1);
    for (let i = 1; i < partial.length; i++) expect(partial[i].startsWith(partial[i - 1])).toBe(true);
    expect(text.startsWith(partial.at(-1)!)).toBe(true);
    expect(await page.locator('.msg.user').textContent()).toBe('Tell me a story about a cat.');

    // The cluster view: both nodes, their layer ranges from the plan, measured compute and memory, the links.
    const layers = (name: string) => page.locator(`.node[data-node="${name}"] dd.layers`).textContent();
    await expect.poll(() => layers('a'), { timeout: 5000 }).toBe('[0, 2)');
    await expect.poll(() => layers('b'), { timeout: 5000 }).toBe('[2, 5)');
    expect(await page.locator('.node[data-node="b"]').textContent()).toMatch(/\d+(\.\d+)? GFLOP\/s decode .*memory\d+\.\d GB/);
    expect(await page.locator('#pipeline').textContent()).toMatch(/a \[0, 2\)→b \[2, 5\)/);
    // Each device's load as its node announces it, its effective speed, and the plan's history.
    await expect.poll(() => page.locator('.node[data-node="b"] dd.load').textContent(), { timeout: 5000 }).toMatch(/^(quiet|[\d.]+× slower for \d+ s) · other processes [\d.]+ cores · [\d.]+ GB free$/);
    expect(await page.locator('.node[data-node="a"] dd.effective').textContent()).toMatch(/^[\d.]+ GFLOP\/s/);
    expect(await page.locator('#plan-history li').first().textContent()).toBeTruthy();
    await expect.poll(() => page.locator('#links tbody tr').count(), { timeout: 5000 }).toBe(2);
    expect(await page.locator('#tps').textContent()).toMatch(/^\d+(\.\d+)? tok\/s$/);

    mkdirSync(join(REPO_ROOT, 'test-artifacts'), { recursive: true });
    await page.screenshot({ path: join(REPO_ROOT, 'test-artifacts', 'web-page.png') });
    expect(pageErrors).toEqual([]);
  });

  it('draws a fine-tuning job\'s loss curve, one point per step, with its split', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(c.a.apiUrl);
    expect(await page.locator('#finetune').isHidden()).toBe(true);
    const data = ['Tom saw a cat. The cat said moo moo moo.', 'Lily saw a dog. The dog said moo moo moo.'].map((text) => JSON.stringify({ text })).join('\n');
    const res = await fetch(`${c.a.apiUrl}/v1/edge-node/finetune`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ data, steps: 12, lr: 0.01, batch: 2 }) });
    expect((await res.text()).trim().split('\n').at(-1)).toMatch(/^\{"type":"done"/);
    await expect.poll(() => page.locator('#finetune-summary').textContent(), { timeout: 5000 }).toMatch(/^done · step 12\/12 · loss \d+\.\d{4} → \d+\.\d{4} · \d+ tok\/s · a\[0,2\) → b\[2,5\)$/);
    const points = (await page.locator('#loss-line').getAttribute('points'))!.split(' ');
    expect(points).toHaveLength(12);
    // Scaled to the box: x from 0 to 300, the highest loss near the top.
    expect(points[0]).toMatch(/^0\.0,/);
    expect(points[11]).toMatch(/^300\.0,/);
    expect(Math.min(...points.map((p) => Number(p.split(',')[1])))).toBeCloseTo(4, 0);
    await page.locator('#finetune').screenshot({ path: join(REPO_ROOT, 'test-artifacts', 'web-page-finetune.png') });
    expect(pageErrors).toEqual([]);
  });
});
