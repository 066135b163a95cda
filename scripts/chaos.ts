/**
 * Device loss, repeated: the chaos scenario of test/chaos.test.ts (test/support/chaos-scenario.ts) `--rounds` times
 * (default 50). A 3-node loopback cluster (split 2,2,1) streams a 200-token greedy answer over SSE while b or c is
 * SIGKILLed at a random moment; a round passes when the streamed text equals the fault-free answer and the stream
 * ends normally. Prints every round and the pass rate. Node logs: test-artifacts/chaos-script/.
 *
 *   npx tsx scripts/chaos.ts [--rounds 50]
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { ChaosCluster } from '../test/support/chaos-scenario.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '50' } } });
const rounds = Number(values.rounds);
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');

const chaos = new ChaosCluster('chaos-script');
let passed = 0;
try {
  console.log(`load average ${load()}`);
  await chaos.start();
  console.log(`reference answer: ${chaos.reference.length} chars`);
  for (let i = 0; i < rounds; i++) {
    const r = await chaos.round(i);
    if (r.ok) passed++;
    console.log(
      `round ${String(i + 1).padStart(2)}/${rounds}: ${r.victim} killed after ${r.delayMs.toFixed(0).padStart(3)} ms, ` +
        `answer in ${r.ms.toFixed(0)} ms: ${r.ok ? 'PASS' : `FAIL (${r.problem})`}`,
    );
  }
  console.log(`kills that landed mid-answer (replays logged by the coordinator): ${chaos.replays()}`);
  console.log(`pass rate: ${passed}/${rounds} (${((100 * passed) / rounds).toFixed(0)}%); load average ${load()}`);
} finally {
  await chaos.cleanup();
}
process.exit(passed === rounds ? 0 : 1);
