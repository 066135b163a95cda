/**
 * The checks `.ci/run` runs before the tests can fail, each naming its rule: `npm run check:layers` (dependency-cruiser
 * with .dependency-cruiser.cjs) on a small tree that breaks every layer and package rule once, and knip (as
 * `npm run check:unused` runs it) on a project with an unused file and an unused export; `npm run check:test-types`
 * covers every package's tests and the scripts, and fails on a type error in one.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(REPO_ROOT, 'node_modules/.bin');
const NODE_LAYERS = ['model', 'tokenizer', 'grammar', 'engine', 'training', 'network', 'cluster', 'weights', 'pipeline', 'api'];

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'rule-checks-'));
  dirs.push(root);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

/** Runs a checker in `cwd`; its exit code and output (a failing check exits non-zero, which execFile rejects). */
async function check(cmd: string, args: string[], cwd: string): Promise<{ code: number; out: string }> {
  try {
    const r = await run(join(BIN, cmd), args, { cwd, timeout: 60_000 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

interface Violation {
  rule: { name: string };
  from: string;
  to: string;
}

describe('npm run check:layers (dependency-cruiser)', () => {
  it('fails on each broken rule, naming it: node layers, package order, testkit in the runtime, cycles', async () => {
    const files: Record<string, string> = {};
    // Each layer imports the one just above it (forbidden); the top layer (api) may import anything below.
    NODE_LAYERS.forEach((layer, i) => {
      const above = NODE_LAYERS[i + 1];
      files[`packages/node/src/${layer}/${layer}-part.ts`] = above
        ? `import { part as up } from '../${above}/${above}-part.js';\nexport const part = () => up;\n`
        : `export const part = 1;\n`;
    });
    // A package importing one it may not (the CLI, the top package, may import every other: it has no such import).
    const forbidden: Record<string, string> = { kernels: 'partitioner', partitioner: 'kernels', node: 'cli', testkit: 'cli', browser: 'partitioner' };
    for (const pkg of ['kernels', 'partitioner', 'node', 'testkit', 'cli', 'browser']) files[`packages/${pkg}/src/leaf.ts`] = 'export const leaf = 1;\n';
    for (const [pkg, other] of Object.entries(forbidden)) {
      files[`packages/${pkg}/src/reach.ts`] = `import { leaf } from '../../${other}/src/leaf.js';\nexport const reach = leaf;\n`;
    }
    files['packages/browser/src/test-models.ts'] = `import { leaf } from '../../testkit/src/leaf.js';\nexport const models = leaf;\n`;
    // A cycle of imports that run, and one of types only (allowed: the compiler erases it).
    files['packages/partitioner/src/ping.ts'] = `import { pong } from './pong.js';\nexport const ping = () => pong;\n`;
    files['packages/partitioner/src/pong.ts'] = `import { ping } from './ping.js';\nexport const pong = () => ping;\n`;
    files['packages/partitioner/src/shape-a.ts'] = `import type { B } from './shape-b.js';\nexport interface A { b?: B }\n`;
    files['packages/partitioner/src/shape-b.ts'] = `import type { A } from './shape-a.js';\nexport interface B { a?: A }\n`;
    const root = tree(files);

    const text = await check('depcruise', ['packages', '--config', join(REPO_ROOT, '.dependency-cruiser.cjs')], root);
    expect(text.code).not.toBe(0);
    expect(text.out).toContain('error node-layer-model: packages/node/src/model/model-part.ts → packages/node/src/tokenizer/tokenizer-part.ts');

    const json = await check('depcruise', ['packages', '--config', join(REPO_ROOT, '.dependency-cruiser.cjs'), '--output-type', 'json'], root);
    const violations = (JSON.parse(json.out.slice(json.out.indexOf('{'))) as { summary: { violations: Violation[] } }).summary.violations;
    const byRule = (name: string) => violations.filter((v) => v.rule.name === name);
    NODE_LAYERS.slice(0, -1).forEach((layer, i) => {
      expect(byRule(`node-layer-${layer}`).map((v) => v.to), layer).toEqual([`packages/node/src/${NODE_LAYERS[i + 1]}/${NODE_LAYERS[i + 1]}-part.ts`]);
    });
    for (const [pkg, other] of Object.entries(forbidden)) {
      expect(byRule(`package-order-${pkg}`).map((v) => `${v.from} → ${v.to}`), pkg).toContain(`packages/${pkg}/src/reach.ts → packages/${other}/src/leaf.ts`);
    }
    expect(byRule('no-testkit-in-runtime').map((v) => v.from)).toEqual(['packages/browser/src/test-models.ts']);
    // A cycle is reported once, from one of its modules.
    const cycles = byRule('no-circular').map((v) => `${v.from} → ${v.to}`);
    expect(cycles).toHaveLength(1);
    expect(['packages/partitioner/src/ping.ts → packages/partitioner/src/pong.ts', 'packages/partitioner/src/pong.ts → packages/partitioner/src/ping.ts']).toContain(cycles[0]);
    // Nothing else (the browser's import of the test kit also breaks its package order): the allowed imports (api
    // below everything, the type-only cycle) are not reported.
    expect(violations.length).toBe(NODE_LAYERS.length - 1 + Object.keys(forbidden).length + 2 + 1);
  });
});

describe('npm run check:unused (knip)', () => {
  it('fails on an unused file and an unused export, naming each; an export its own file uses passes', async () => {
    const root = tree({
      'package.json': JSON.stringify({ name: 'knip-fixture', private: true, type: 'module', exports: './src/index.ts' }),
      // The same option as the repository's knip.jsonc.
      'knip.json': JSON.stringify({ ignoreExportsUsedInFile: true }),
      'src/index.ts': `import { used } from './used.js';\nexport const main = () => used();\n`,
      'src/used.ts': `export const forgotten = 1;\nexport const helper = 2;\nexport function used() {\n  return helper;\n}\n`,
      'src/orphan.ts': `export const orphan = 1;\n`,
    });
    const r = await check('knip', ['--no-progress'], root);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/Unused files \(1\)\s+src\/orphan\.ts/);
    expect(r.out).toMatch(/Unused exports \(1\)\s+forgotten\s+src\/used\.ts/);
    expect(r.out).not.toContain('helper');
  });
});

describe('npm run check:test-types (tsc -p tsconfig.tests.json)', () => {
  it('type-checks the tests of every package and of test/, and the scripts, against the sources they import', async () => {
    const r = await check('tsc', ['-p', 'tsconfig.tests.json', '--listFilesOnly'], REPO_ROOT);
    expect(r.code).toBe(0);
    const files = r.out.split('\n').map((f) => f.trim().replace(`${REPO_ROOT}/`, ''));
    for (const f of ['test/rule-checks.test.ts', 'packages/node/test/device-profile.test.ts', 'packages/kernels/test/relaxed-build.test.ts', 'packages/cli/test/plan-command.test.ts', 'scripts/bench-engine.ts']) {
      expect(files, f).toContain(f);
    }
  });

  it('fails on a type error in a test, naming the file and the error', async () => {
    const root = tree({
      'tsconfig.json': JSON.stringify({ extends: join(REPO_ROOT, 'tsconfig.tests.json'), compilerOptions: { typeRoots: [join(REPO_ROOT, 'node_modules/@types')] }, include: ['test/**/*.ts'] }),
      'test/wrong.test.ts': 'export const n: number = "not a number";\n',
    });
    const r = await check('tsc', ['-p', join(root, 'tsconfig.json')], root);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/test\/wrong\.test\.ts.*TS2322/);
  });
});
