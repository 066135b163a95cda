import './shims/node-timers.js';
import type { LogLevel, NodeLogger } from '@edge-node/node/browser';
import { startBrowserNode, type BrowserNode } from './browser-node.js';
import type { BrowserNodeStatus } from './browser-status.js';
import { clusterKeyFromFragment, clusterKeyFromText } from './cluster-key-text.js';
import { pickWebSocketAddress } from './ws-address.js';

/** What GET /join/info answers. */
interface JoinInfo {
  name: string;
  peerId: string;
  wsAddresses: string[];
  clusterKeyRequired: boolean;
}

/** sessionStorage item holding the cluster key for reloads of this tab. */
const KEY_ITEM = 'edge-node-cluster-key';

type PageState = 'idle' | 'needs-key' | 'joining' | 'joined' | 'serving' | 'refused' | 'error' | 'left';

/** The page's state for people (the DOM) and for tests (window.edgeNode). */
interface PageApi {
  state: PageState;
  error: string | null;
  status: BrowserNodeStatus | null;
  crossOriginIsolated: boolean;
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const api: PageApi = { state: 'idle', error: null, status: null, crossOriginIsolated: globalThis.crossOriginIsolated === true };
(globalThis as unknown as { edgeNode: PageApi }).edgeNode = api;

function setState(state: PageState, detail = ''): void {
  api.state = state;
  const el = $('state');
  el.dataset.state = state;
  el.textContent = state;
  $('detail').textContent = detail;
}

const logLines: string[] = [];
function pageLogger(): NodeLogger {
  const write = (level: LogLevel, message: string) => {
    const line = `${new Date().toLocaleTimeString()} ${level} ${message}`;
    (level === 'error' || level === 'warn' ? console.warn : console.log)(line);
    if (level === 'debug') return;
    logLines.push(line);
    if (logLines.length > 200) logLines.shift();
    $('log').textContent = logLines.join('\n');
  };
  return { debug: (m) => write('debug', m), info: (m) => write('info', m), warn: (m) => write('warn', m), error: (m) => write('error', m) };
}

function mb(bytes: number): string {
  return bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${(bytes / 1e3).toFixed(1)} kB`;
}

function render(s: BrowserNodeStatus): void {
  api.status = s;
  $('layers').textContent = s.layers.length ? s.layers.map((r) => `[${r.start}, ${r.end})`).join(', ') : 'none yet';
  $('cached').textContent = `${mb(s.cachedBytes)} (${s.cachedTensors} tensors)`;
  $('tps').textContent = `${s.tokensPerSecond.toFixed(1)} (${s.tokensTotal} total)`;
  $('device').textContent = `${s.profile.gflopsDecode} GFLOP/s ${s.profile.isa}, ${s.profile.threads} thr`;
  const t = s.timings;
  $('timings').textContent =
    `measured in ${(t.measuredMs / 1000).toFixed(2)} s, joined at ${(t.joinedMs / 1000).toFixed(2)} s` +
    (t.manifestMs !== null ? `, model ${s.model} known at ${(t.manifestMs / 1000).toFixed(2)} s` : '') +
    (t.layersLoadedMs !== null && t.layersLoadMs !== null ? `, layers loaded at ${(t.layersLoadedMs / 1000).toFixed(2)} s (in ${t.layersLoadMs.toFixed(0)} ms)` : '') +
    (s.weights ? ` · fetched ${s.weights.fetchedTensors} tensors (${mb(s.weights.fetchedBytes)}) from peers, ${s.weights.reusedTensors} from this browser's cache` : '');
  const rows = s.members.map((m) => {
    const tr = document.createElement('tr');
    for (const text of [`${m.name}${m.peerId === s.peerId ? ' (this tab)' : ''}`, m.runtime, m.layers || '–']) {
      const td = document.createElement('td');
      td.textContent = text;
      tr.append(td);
    }
    return tr;
  });
  $('members').replaceChildren(...rows);
  if (s.layers.length > 0 && api.state === 'joined') setState('serving', `holding layers ${$('layers').textContent}`);
}

async function join(info: JoinInfo, keyText: string | null): Promise<void> {
  const log = pageLogger();
  const params = new URLSearchParams(location.search);
  let clusterKey: Uint8Array | undefined;
  try {
    clusterKey = keyText ? clusterKeyFromText(keyText) : undefined;
  } catch (err) {
    setState('needs-key', (err as Error).message);
    return;
  }
  const bootstrap = pickWebSocketAddress(info.wsAddresses, location.hostname);
  if (!bootstrap) {
    setState('error', `${info.name} has no WebSocket address to dial; start it with --listen /ip4/0.0.0.0/tcp/PORT/ws`);
    return;
  }
  $<HTMLFormElement>('key-form').hidden = true;
  setState('joining', `dialing ${info.name} at ${bootstrap}`);
  const name = params.get('name') ?? `browser-${Math.random().toString(36).slice(2, 6)}`;
  const memoryMb = Number(params.get('memory') ?? '') || 1024;
  const threads = Number(params.get('threads') ?? '') || undefined;
  let node: BrowserNode;
  try {
    node = await startBrowserNode({
      name,
      bootstrap,
      memoryBudgetBytes: memoryMb * 1024 * 1024,
      threads,
      log,
      clusterKeyRequired: info.clusterKeyRequired,
      ...(clusterKey ? { clusterKey } : {}),
    });
  } catch (err) {
    api.error = (err as Error).message;
    setState((err as Error).name === 'JoinRefusedError' ? 'refused' : 'error', (err as Error).message);
    if (info.clusterKeyRequired) $<HTMLFormElement>('key-form').hidden = false;
    return;
  }
  setState('joined', `as ${name}; waiting for layers`);
  const leave = $<HTMLButtonElement>('leave');
  leave.disabled = false;
  const timer = setInterval(() => void node.status().then(render, () => {}), 500);
  const onLeave = async () => {
    leave.disabled = true;
    clearInterval(timer);
    await node.leave().catch((err: Error) => log.warn(`leaving: ${err.message}`));
    setState('left', 'this tab no longer serves the cluster; reload to join again (cached layers stay)');
  };
  leave.addEventListener('click', () => void onLeave(), { once: true });
  addEventListener('pagehide', () => void node.leave().catch(() => {}));
}

async function main(): Promise<void> {
  let info: JoinInfo;
  try {
    const res = await fetch('/join/info');
    if (!res.ok) throw new Error(`GET /join/info answered ${res.status}`);
    info = (await res.json()) as JoinInfo;
  } catch (err) {
    setState('error', `cannot reach the node that served this page: ${(err as Error).message}`);
    return;
  }
  // The key comes from the fragment (then leaves the address bar) or, after a reload, from this tab's session storage:
  // neither is ever sent to a server.
  const fragmentKey = clusterKeyFromFragment(location.hash);
  if (fragmentKey) {
    history.replaceState(null, '', location.pathname + location.search);
    sessionStorage.setItem(KEY_ITEM, fragmentKey);
  }
  const sessionKey = fragmentKey ?? sessionStorage.getItem(KEY_ITEM);
  if (info.clusterKeyRequired && !sessionKey) {
    setState('needs-key', `${info.name} belongs to a private cluster`);
    const form = $<HTMLFormElement>('key-form');
    form.hidden = false;
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const typed = $<HTMLInputElement>('key').value.trim() || null;
      if (typed) sessionStorage.setItem(KEY_ITEM, typed);
      void join(info, typed);
    });
    return;
  }
  await join(info, sessionKey);
}

void main();
