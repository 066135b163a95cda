// Prints the one closing line CI reads ("N passed, N failed"), from vitest's JSON report; further arguments name the
// rule checks (npm scripts) that failed before the tests, each counted as one failure.
import { readFileSync } from 'node:fs';

const file = process.argv[2] ?? 'test-artifacts/vitest-results.json';
const failedChecks = process.argv.slice(3);
const report = JSON.parse(readFileSync(file, 'utf8'));
const passed = report.numPassedTests ?? 0;
// Files that failed to load count as failures too: a broken import must not read as green.
const failed = (report.numFailedTests ?? 0) + (report.testResults ?? []).filter((r) => r.status === 'failed' && r.assertionResults.length === 0).length;
for (const check of failedChecks) console.log(`failed: npm run ${check} (its output above names the broken rule)`);
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
console.log(`${passed} passed, ${failed + failedChecks.length} failed${skipped ? `, ${skipped} skipped` : ''}`);
if (passed === 0) process.exitCode = 1;
