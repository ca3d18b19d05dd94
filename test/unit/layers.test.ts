/**
 * The layer rules of docs/architecture.md §5 fail `npm run lint` when broken: each rule of
 * .dependency-cruiser.cjs is broken on purpose in a throw-away copy of the layout, and
 * dependency-cruiser (the same binary and configuration the lint script runs) must name it.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
let dir: string;

function write(path: string, text: string): void {
  mkdirSync(dirname(join(dir, path)), { recursive: true });
  writeFileSync(join(dir, path), text);
}

function cruise(): { code: number | null; output: string } {
  const result = spawnSync(
    process.execPath,
    [
      join(root, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs'),
      'functions',
      'shared',
      'schemas',
      '--config',
      '.dependency-cruiser.cjs',
    ],
    { cwd: dir, encoding: 'utf8', timeout: 120_000 },
  );
  return { code: result.status, output: `${result.stdout}${result.stderr}` };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'fleetgate-layers-'));
  copyFileSync(join(root, '.dependency-cruiser.cjs'), join(dir, '.dependency-cruiser.cjs'));
  write(
    'tsconfig.json',
    JSON.stringify({
      compilerOptions: { module: 'ESNext', moduleResolution: 'Bundler', allowImportingTsExtensions: true },
    }),
  );
  // A layout that keeps every rule.
  write('shared/domain/state.ts', "export const STATES = ['ACTIVE'] as const;\n");
  write(
    'shared/store/store.ts',
    "import { STATES } from '../domain/state';\nexport const first = STATES[0];\n",
  );
  write('schemas/event.ts', 'export const EVENT = 1;\n');
  write(
    'functions/hook/handler.ts',
    "import { first } from '../../shared/store/store';\nimport { EVENT } from '../../schemas/event';\nexport const handler = () => [first, EVENT];\n",
  );
  write(
    'functions/sweep/handler.ts',
    "import { first } from '../../shared/store/store';\nexport const handler = () => first;\n",
  );
  write('local/stack.ts', 'export const stack = 1;\n');
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('layer rules (dependency-cruiser)', () => {
  it('pass on a layout that keeps them', () => {
    const result = cruise();
    expect(result.output).toContain('no dependency violations');
    expect(result.code).toBe(0);
  });

  it('fail, naming lambda-bundle-no-local-tools, when a handler reaches a local tool through shared code', () => {
    write(
      'node_modules/yaml/package.json',
      JSON.stringify({ name: 'yaml', version: '0.0.0', main: 'index.js' }),
    );
    write('node_modules/yaml/index.js', 'exports.parse = () => ({});\n');
    write(
      'shared/store/config-file.ts',
      "import { parse } from 'yaml';\nexport const read = (text: string) => parse(text);\n",
    );
    write(
      'functions/hook/handler.ts',
      "import { read } from '../../shared/store/config-file';\nexport const handler = () => read('');\n",
    );
    try {
      const result = cruise();
      expect(result.code).not.toBe(0);
      expect(result.output).toContain('lambda-bundle-no-local-tools');
    } finally {
      rmSync(join(dir, 'shared/store/config-file.ts'));
      write(
        'functions/hook/handler.ts',
        "import { first } from '../../shared/store/store';\nimport { EVENT } from '../../schemas/event';\nexport const handler = () => [first, EVENT];\n",
      );
    }
  });

  const broken: Array<[string, string, string]> = [
    [
      'lambda-code-not-local-or-cli',
      'functions/hook/uses-local.ts',
      "import { stack } from '../../local/stack';\nexport const x = stack;\n",
    ],
    [
      'domain-is-pure',
      'shared/domain/clock.ts',
      "import { randomUUID } from 'node:crypto';\nexport const id = () => randomUUID();\n",
    ],
    [
      'shared-not-functions',
      'shared/store/uses-function.ts',
      "import { handler } from '../../functions/hook/handler';\nexport const h = handler;\n",
    ],
    [
      'one-function-not-another',
      'functions/sweep/uses-hook.ts',
      "import { handler } from '../hook/handler';\nexport const h = handler;\n",
    ],
  ];
  for (const [rule, file, text] of broken) {
    it(`fail, naming ${rule}, when it is broken`, () => {
      write(file, text);
      try {
        const result = cruise();
        expect(result.code).not.toBe(0);
        expect(result.output).toContain(rule);
      } finally {
        rmSync(join(dir, file));
      }
    });
  }
});

describe('the domain does not read the clock (Biome plugin lint/no-clock-in-domain.grit)', () => {
  it('flags Date.now() and new Date() in shared/domain, and nothing elsewhere or with an argument', () => {
    const fixture = mkdtempSync(join(tmpdir(), 'fleetgate-clock-'));
    try {
      writeFileSync(
        join(fixture, 'biome.json'),
        JSON.stringify({ plugins: [join(root, 'lint', 'no-clock-in-domain.grit')] }),
      );
      const code =
        'export const a = () => Date.now();\nexport const b = () => new Date();\nexport const c = (t: number) => new Date(t).toISOString();\n';
      mkdirSync(join(fixture, 'shared', 'domain'), { recursive: true });
      mkdirSync(join(fixture, 'shared', 'store'), { recursive: true });
      writeFileSync(join(fixture, 'shared', 'domain', 'clock.ts'), code);
      writeFileSync(join(fixture, 'shared', 'store', 'clock.ts'), code);
      const result = spawnSync(join(root, 'node_modules', '.bin', 'biome'), ['lint', '.'], {
        cwd: fixture,
        encoding: 'utf8',
        timeout: 60_000,
      });
      const output = `${result.stdout}${result.stderr}`;
      expect(result.status).not.toBe(0);
      expect(output.match(/the time is a parameter/g)?.length).toBe(2);
      expect(output).toContain('shared/domain/clock.ts:1:');
      expect(output).toContain('shared/domain/clock.ts:2:');
      expect(output).not.toContain('shared/store/clock.ts');
    } finally {
      rmSync(fixture, { recursive: true, force: true });
    }
  });
});
