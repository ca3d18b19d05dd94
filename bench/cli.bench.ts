/**
 * CPU time of the `fleetgate` command before it does anything useful, against `node -e 0` measured
 * in the same run (the ratio is what to compare across machines): `fleetgate --help`, `--version`,
 * and `fleetgate devices get <serial>` against a running local stack — the call an operator scripts
 * over a list. Target: ≤ 300 ms CPU each on the 2-core development machine. Median of 9 fresh
 * processes; CPU is the process's own (user + system, from getrusage at exit), not wall time.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../local/paths';
import type { BenchContext, BenchRow } from './types';

const RUNS = 9;
const TARGET_MS = 300;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

export async function run(_context: BenchContext): Promise<BenchRow[]> {
  const root = projectRoot();
  const dir = mkdtempSync(join(tmpdir(), 'fleetgate-cli-bench-'));
  const report = join(dir, 'cpu.jsonl');
  const stackFile = join(dir, 'stack.json');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    FLEETGATE_STACK_FILE: stackFile,
    FLEETGATE_CPU_REPORT: report,
  };
  const bin = join(root, 'bin', 'fleetgate.mjs');
  const preload = join(root, 'bench', 'support', 'cpu-report.mjs');
  // The bundle the command runs (built by `prepare` at npm ci; rebuilt here if sources changed).
  spawnSync(process.execPath, [join(root, 'scripts', 'build-cli.mjs')], { cwd: root, stdio: 'ignore' });
  const measure = (args: string[]) => {
    rmSync(report, { force: true });
    for (let i = 0; i < RUNS; i += 1) {
      spawnSync(process.execPath, ['--import', preload, ...args], { cwd: root, env, stdio: 'ignore' });
    }
    const lines = readFileSync(report, 'utf8').trim().split('\n');
    const samples = lines.map((line) => JSON.parse(line) as { cpuMs: number; maxRssKb: number });
    return {
      cpuMs: median(samples.map((s) => s.cpuMs)),
      rssMb: median(samples.map((s) => s.maxRssKb)) / 1024,
    };
  };
  const up = spawnSync(process.execPath, [bin, 'local', 'up', '--json'], {
    cwd: root,
    env,
    encoding: 'utf8',
  });
  if (up.status !== 0) throw new Error(`fleetgate local up failed: ${up.stderr}`);
  try {
    const baseline = measure(['-e', '0']);
    const rows: BenchRow[] = [
      { name: 'node -e 0 (baseline, CPU)', value: round(baseline.cpuMs), unit: 'ms' },
    ];
    for (const [name, args] of [
      ['fleetgate --help (CPU)', ['--help']],
      ['fleetgate --version (CPU)', ['--version']],
      [
        'fleetgate devices get <serial> on a running stack (CPU)',
        ['devices', 'get', 'SN-BENCH-0001', '--json'],
      ],
      ['fleetgate devices get, through tsx (no bundle; CPU)', ['devices', 'get', 'SN-BENCH-0001', '--json']],
    ] as const) {
      const tsx = name.includes('tsx');
      const saved = env.FLEETGATE_CLI;
      if (tsx) env.FLEETGATE_CLI = 'tsx';
      const result = measure([bin, ...args]);
      if (tsx) env.FLEETGATE_CLI = saved;
      rows.push({
        name,
        value: round(result.cpuMs),
        unit: 'ms',
        target: tsx ? undefined : `≤ ${TARGET_MS} ms`,
        ratio: tsx ? undefined : round(TARGET_MS / result.cpuMs),
      });
      rows.push({
        name: `${name.replace(' (CPU)', '')} ÷ node -e 0`,
        value: round(result.cpuMs / baseline.cpuMs),
        unit: '×',
      });
    }
    return rows;
  } finally {
    spawnSync(process.execPath, [bin, 'local', 'down'], { cwd: root, env, stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  }
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
