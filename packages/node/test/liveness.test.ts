import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_GRACE_MS, LoopLag, livenessVerdict, silenceAllowedMs } from '../src/cluster/liveness.js';

describe('liveness rules', () => {
  const policy = { failureTimeoutMs: 2000 };

  it('drops a punctual peer after the failure timeout', () => {
    expect(livenessVerdict(1900, 0, policy).lost).toBe(false);
    const v = livenessVerdict(2100, 0, policy);
    expect(v.lost).toBe(true);
    if (v.lost) expect(v.reason).toBe('no heartbeat for 2.1 s with the connection open');
  });

  it('gives a peer that announced late beats more time, up to a cap', () => {
    expect(silenceAllowedMs(1000, policy)).toBe(5000);
    expect(livenessVerdict(4500, 1000, policy).lost).toBe(false);
    const v = livenessVerdict(5200, 1000, policy);
    expect(v.lost).toBe(true);
    if (v.lost) expect(v.reason).toContain('its beats were up to 1.0 s late, so it had 5.0 s');
    // A frozen peer that once lagged a lot is still dropped after the cap: 3 s by default (compute lets the loop turn).
    expect(silenceAllowedMs(60_000, policy)).toBe(2000 + DEFAULT_MAX_GRACE_MS);
    expect(DEFAULT_MAX_GRACE_MS).toBe(3000);
    expect(silenceAllowedMs(60_000, { ...policy, maxGraceMs: 5000 })).toBe(7000);
  });

  it('gives a peer that announced a slow device time in proportion to its slowdown, up to the cap', () => {
    const patient = { ...policy, maxGraceMs: 20_000 };
    expect(silenceAllowedMs(0, patient, 6)).toBe(12_000);
    expect(livenessVerdict(10_000, 300, patient, 6).lost).toBe(false);
    const v = livenessVerdict(13_000, 300, patient, 6);
    expect(v.lost).toBe(true);
    if (v.lost) expect(v.reason).toBe('no heartbeat for 13.0 s with the connection open; its beats were up to 0.3 s late and it announced running 6× slower, so it had 12.9 s');
    expect(silenceAllowedMs(0, patient, 50)).toBe(22_000);
    // By default a stopped node that had announced a 6× slowdown is lost 5 s after its last beat.
    expect(silenceAllowedMs(0, policy, 6)).toBe(5000);
    expect(livenessVerdict(5100, 300, policy, 6).lost).toBe(true);
    expect(silenceAllowedMs(0, policy, 1.5)).toBe(3000);
  });

  it('remembers the worst lag of the window, then forgets it', () => {
    const lag = new LoopLag(10_000);
    lag.record(0, 50);
    lag.record(1000, 900);
    lag.record(2000, 100);
    expect(lag.worst(2000)).toBe(900);
    expect(lag.worst(11_500)).toBe(100);
    expect(lag.worst(12_500)).toBe(0);
  });
});
