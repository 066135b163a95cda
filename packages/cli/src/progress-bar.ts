import type { DownloadProgress, FinetuneProgress } from '@edge-node/node';

function mb(bytes: number): string {
  return (bytes / 1e6).toFixed(bytes < 1e7 ? 2 : 1);
}

function clock(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** One progress line: file, bar, percent, MB done/total, speed and ETA. Speed counts only bytes fetched now. */
export function formatDownloadProgress(p: DownloadProgress, elapsedMs: number, width = 24): string {
  const frac = p.totalBytes > 0 ? Math.min(1, p.bytes / p.totalBytes) : 1;
  const filled = Math.round(frac * width);
  const fetched = Math.max(0, p.bytes - p.reusedBytes);
  const rate = elapsedMs > 0 ? fetched / (elapsedMs / 1000) : 0;
  const eta = rate > 0 ? (p.totalBytes - p.bytes) / rate : Number.NaN;
  return (
    `${p.file} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(frac * 100).toFixed(0).padStart(3)}% ` +
    `${mb(p.bytes)}/${mb(p.totalBytes)} MB  ${mb(rate)} MB/s  ETA ${clock(eta)}`
  );
}

/**
 * A download progress reporter for stderr: redraws one line on a terminal, and prints a line every 2 s (and at
 * the end) when stderr is a file or pipe, so logs stay readable.
 */
export function createDownloadProgressBar(out: NodeJS.WriteStream = process.stderr): (p: DownloadProgress) => void {
  const start = Date.now();
  let last = 0;
  let finished = false;
  return (p) => {
    const now = Date.now();
    const done = p.bytes >= p.totalBytes;
    if (finished) return;
    if (!done && now - last < (out.isTTY ? 100 : 2000)) return;
    last = now;
    const line = formatDownloadProgress(p, now - start);
    if (out.isTTY) out.write(`\r\x1b[2K${line}${done ? '\n' : ''}`);
    else out.write(`${line}\n`);
    finished = done;
  };
}

/** One training progress line: step bar, loss, tokens/s and ETA. */
export function formatTrainingProgress(p: FinetuneProgress, width = 24): string {
  const frac = p.steps > 0 ? Math.min(1, p.step / p.steps) : 1;
  const filled = Math.round(frac * width);
  return (
    `step ${String(p.step).padStart(String(p.steps).length)}/${p.steps} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ` +
    `loss ${p.loss.toFixed(4)}  ${p.tokensPerSecond.toFixed(0)} tok/s  ETA ${clock(p.etaSeconds)}`
  );
}

/** A training progress reporter for stderr: redraws one line on a terminal; a line every 2 s (and the last) otherwise. */
export function createTrainingProgressLine(out: NodeJS.WriteStream = process.stderr): (p: FinetuneProgress) => void {
  let last = 0;
  return (p) => {
    const now = Date.now();
    const done = p.step >= p.steps;
    if (!done && now - last < (out.isTTY ? 100 : 2000)) return;
    last = now;
    const line = formatTrainingProgress(p);
    if (out.isTTY) out.write(`\r\x1b[2K${line}${done ? '\n' : ''}`);
    else out.write(`${line}\n`);
  };
}
