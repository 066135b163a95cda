/**
 * The fastest round trip of `pings` spaced pings (`spacingMs` apart: a node busy for a moment, loading or in a long
 * prefill, delays a burst of pings together), each followed by one at once. The first of a pair wakes both processes
 * after `spacingMs` asleep; the second meets them awake, as a running ring's frames do. The cold ones alone read
 * 0.4–0.7 ms on loopback where a ring's hop took ~0.3 with its frame's step cost, so the served hops' excess over half
 * a ping went below −0.2 ms and the links were priced at 0 (served-hops.ts); what a hop costs beyond the warm figure
 * (a receiver's wake-up in a slow ring, a frame's codec) is that excess's to say.
 */
export async function fastestRoundTrip(ping: () => Promise<unknown>, pings: number, spacingMs: number): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < pings; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, spacingMs));
    for (let j = 0; j < 2; j++) {
      const t0 = performance.now();
      await ping();
      best = Math.min(best, performance.now() - t0);
    }
  }
  return best;
}
