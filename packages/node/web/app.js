// The edge-node page: chat with streamed answers (OpenAI's chat API on this node), a live view of the cluster
// (/v1/cluster, polled) and the loss curve of a fine-tuning job (/v1/edge-node/finetune, polled). Plain browser
// JavaScript, served as is.

const $ = (id) => document.getElementById(id);
const history = [];
let modelId = null;
let controller = null;

const keyInput = $('api-key');
keyInput.value = localStorage.getItem('edge-node-api-key') ?? '';
keyInput.addEventListener('change', () => {
  localStorage.setItem('edge-node-api-key', keyInput.value);
  refresh();
});

function headers() {
  const h = { 'content-type': 'application/json' };
  if (keyInput.value) h.authorization = `Bearer ${keyInput.value}`;
  return h;
}

async function apiError(res) {
  try {
    const body = await res.json();
    return body.error?.message ?? `HTTP ${res.status}`;
  } catch {
    return `HTTP ${res.status}`;
  }
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function addMessage(role, text) {
  const m = el('div', `msg ${role}`, text);
  $('messages').append(m);
  $('messages').scrollTop = $('messages').scrollHeight;
  return m;
}

/** Reads an SSE body: calls onEvent with each parsed `data:` JSON until `[DONE]`. */
async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split('\n')) {
        if (!line.startsWith('data:')) continue;
        const data = line.slice(5).trim();
        if (data === '[DONE]') return;
        onEvent(JSON.parse(data));
      }
    }
  }
}

async function send(text) {
  if (!modelId) await refreshModels();
  history.push({ role: 'user', content: text });
  addMessage('user', text);
  const bubble = addMessage('assistant streaming', '');
  bubble.dataset.testid = 'assistant-message';
  let answer = '';
  let usage = null;
  let finish = null;
  const started = performance.now();
  controller = new AbortController();
  $('send').disabled = true;
  $('stop').disabled = false;
  try {
    const res = await fetch('/v1/chat/completions', {
      method: 'POST',
      headers: headers(),
      signal: controller.signal,
      body: JSON.stringify({
        model: modelId ?? 'unknown',
        messages: history,
        stream: true,
        stream_options: { include_usage: true },
        max_tokens: Number($('max-tokens').value) || 128,
        temperature: Number($('temperature').value),
      }),
    });
    if (!res.ok) throw new Error(await apiError(res));
    await readEvents(res.body, (chunk) => {
      if (chunk.error) throw new Error(chunk.error.message);
      const choice = chunk.choices?.[0];
      if (choice?.delta?.content) {
        answer += choice.delta.content;
        bubble.textContent = answer.trimStart();
        $('messages').scrollTop = $('messages').scrollHeight;
      }
      if (choice?.finish_reason) finish = choice.finish_reason;
      if (chunk.usage) usage = chunk.usage;
    });
    history.push({ role: 'assistant', content: answer });
    const secs = (performance.now() - started) / 1000;
    const meta = el('span', 'meta', usage ? `${usage.completion_tokens} tokens in ${secs.toFixed(2)} s · ${finish ?? ''}` : `${secs.toFixed(2)} s`);
    bubble.append(meta);
  } catch (err) {
    if (err.name === 'AbortError') {
      bubble.append(el('span', 'meta', 'stopped'));
      history.push({ role: 'assistant', content: answer });
    } else {
      bubble.classList.add('error');
      bubble.textContent = answer ? `${answer}\n\n${err.message}` : err.message;
      history.pop();
    }
  } finally {
    bubble.classList.remove('streaming');
    bubble.dataset.done = 'true';
    controller = null;
    $('send').disabled = false;
    $('stop').disabled = true;
  }
}

$('composer').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('prompt').value.trim();
  if (!text || controller) return;
  $('prompt').value = '';
  void send(text);
});
$('prompt').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey) {
    e.preventDefault();
    $('composer').requestSubmit();
  }
});
$('stop').addEventListener('click', () => controller?.abort());
$('clear').addEventListener('click', () => {
  history.length = 0;
  $('messages').replaceChildren();
});

async function refreshModels() {
  const res = await fetch('/v1/models', { headers: headers() });
  if (!res.ok) throw new Error(await apiError(res));
  const list = await res.json();
  modelId = list.data[0]?.id ?? null;
  $('model-id').textContent = modelId ? `model ${modelId}` : 'this node has no model';
}

const gb = (bytes) => `${(bytes / 1e9).toFixed(1)} GB`;
const range = (r) => `[${r[0]}, ${r[1]})`;

/** Layer ranges per peer id: from the plan this node made, else from what each node announces. */
function rangesOf(status, members) {
  const out = new Map();
  for (const s of status.plan?.stages ?? []) out.set(s.peerId, [[s.startLayer, s.endLayer]]);
  for (const m of members) if (!out.has(m.peerId) && m.stageInfo?.ranges?.length) out.set(m.peerId, m.stageInfo.ranges);
  return out;
}

function renderCluster(status) {
  const members = [status.self, ...status.peers];
  const names = new Map(members.map((m) => [m.peerId, m.name]));
  const ranges = rangesOf(status, members);
  const layers = status.model?.layers;
  $('cluster-summary').textContent = `${members.length} node${members.length === 1 ? '' : 's'}${layers ? ` · ${layers} layers` : ''}`;
  $('tps').textContent = `${status.serving?.tokensPerSecond ?? 0} tok/s`;

  const pipe = $('pipeline');
  pipe.replaceChildren();
  const stages = status.plan?.stages ?? [];
  if (stages.length) {
    pipe.append(el('span', 'muted', 'pipeline:'));
    stages.forEach((s, i) => {
      if (i > 0) pipe.append(el('span', 'muted', '→'));
      pipe.append(el('span', 'stage', `${s.name} ${range([s.startLayer, s.endLayer])}`));
    });
  } else pipe.append(el('span', 'muted', 'no plan on this node yet (it plans on its first request)'));
  // Who owns the plan, so that every node's page shows the same plan and says whose it is.
  if (status.plan?.owner) pipe.append(el('div', 'muted plan-owner', `plan: ${status.plan.owner.why}`));
  for (const e of status.plan?.excluded ?? []) pipe.append(el('div', 'muted excluded', `left out ${names.get(e.device) ?? e.device.slice(-8)}: ${e.reason}`));

  // The last plan changes, newest first, with their reasons.
  const history = $('plan-history');
  history.replaceChildren();
  for (const c of [...(status.planHistory ?? [])].reverse()) {
    const li = el('li', 'plan-change');
    li.append(el('span', 'muted', `${new Date(c.at).toLocaleTimeString()} `), el('span', '', c.reason));
    history.append(li);
  }
  if (!history.children.length) history.append(el('li', 'muted', 'no plan change yet'));

  const nodes = $('nodes');
  nodes.replaceChildren();
  for (const m of members) {
    const card = el('div', 'node');
    card.dataset.node = m.name;
    const title = el('div');
    title.append(el('span', 'name', m.name), el('span', 'self', m === status.self ? ' (this node)' : ` · seen ${(m.lastSeenMsAgo / 1000).toFixed(1)} s ago`));
    const dl = el('dl');
    const row = (k, v, cls) => {
      const dd = el('dd', cls, v);
      dl.append(el('dt', '', k), dd);
    };
    const r = ranges.get(m.peerId);
    row('layers', r ? r.map(range).join(', ') : 'none', 'layers');
    row('compute', `${m.profile.gflopsDecode} GFLOP/s decode · ${m.profile.gflopsPrefill} prefill (${m.profile.backend} ${m.profile.isa} × ${m.profile.threads} threads, ${m.profile.runtime}${m.profile.kvCache ? `, KV cache ${m.profile.kvCache}` : ''})`);
    row('memory', gb(m.profile.memoryBytes));
    const l = m.load;
    if (l) {
      const busy = l.slowdown > 1 ? `${l.slowdown}× slower for ${Math.max(0, Math.round((Date.now() - l.since) / 1000))} s` : 'quiet';
      row('load', `${busy} · other processes ${l.otherCpuCores.toFixed(1)} cores · ${gb(l.availableMemoryBytes)} free`, l.slowdown > 1 ? 'load busy' : 'load');
      row('effective', `${m.effectiveGflops} GFLOP/s${l.memoryBudgetBytes < m.profile.memoryBytes ? ` · budget ${gb(l.memoryBudgetBytes)} (${l.memoryReason})` : ''}`, 'effective');
    }
    card.append(title, dl);
    nodes.append(card);
  }

  const body = $('links').tBodies[0];
  body.replaceChildren();
  for (const l of status.links) {
    const tr = el('tr');
    tr.append(el('td', '', names.get(l.from) ?? l.from.slice(-8)), el('td', '', names.get(l.to) ?? l.to.slice(-8)), el('td', '', `${l.rttMs.toFixed(2)} ms`), el('td', '', `${l.bandwidthMBps} MB/s`));
    body.append(tr);
  }
}

// The job this node owns or owned last (POST /v1/edge-node/finetune): its loss per step as a line, scaled to the box.
function renderFinetune(job) {
  $('finetune').hidden = !job;
  if (!job) return;
  const losses = job.losses;
  const top = Math.max(...losses, 1e-9);
  const dx = 300 / Math.max(1, job.steps - 1);
  $('loss-line').setAttribute('points', losses.map((l, i) => `${(i * dx).toFixed(1)},${(80 - (l / top) * 76).toFixed(1)}`).join(' '));
  const last = losses.length ? losses[losses.length - 1].toFixed(4) : '–';
  $('finetune-summary').textContent = `${job.state} · step ${job.step}/${job.steps} · loss ${losses.length ? losses[0].toFixed(4) : '–'} → ${last} · ${job.tokensPerSecond.toFixed(0)} tok/s · ${job.stages}`;
  $('finetune-message').textContent = job.message ?? '';
}

async function refreshFinetune() {
  const res = await fetch('/v1/edge-node/finetune', { headers: headers() });
  if (res.ok) renderFinetune((await res.json()).job);
}

async function refresh() {
  void refreshFinetune().catch(() => {});
  try {
    const res = await fetch('/v1/cluster', { headers: headers() });
    if (!res.ok) throw new Error(await apiError(res));
    renderCluster(await res.json());
    $('cluster-error').hidden = true;
    if (!modelId) await refreshModels();
  } catch (err) {
    $('cluster-error').textContent = err.message;
    $('cluster-error').hidden = false;
  }
}

void refresh();
setInterval(refresh, 1000);
