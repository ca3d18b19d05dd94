/**
 * One story of Node versions: Lambda runs `nodejs22.x` (bundles target node22); everything else
 * (the local stack, the CLI, the tests) runs on Node 20.19+ as the README promises, so the code
 * they share is typed against the oldest supported Node (`@types/node` 20) and uses nothing newer.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadServerlessConfig } from '../../local/serverless-config';

const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as {
  engines: { node: string };
  devDependencies: Record<string, string>;
};
const lock = JSON.parse(readFileSync('package-lock.json', 'utf8')) as {
  packages: Record<string, { version?: string }>;
};
const sls = loadServerlessConfig() as unknown as {
  provider: { runtime: string };
  custom?: { esbuild?: { target?: string } };
};
const major = (version: string) => Number(/(\d+)/.exec(version)?.[1]);

describe('Node versions', () => {
  it('Lambda bundles target the Lambda runtime', () => {
    expect(sls.provider.runtime).toBe('nodejs22.x');
    expect(sls.custom?.esbuild?.target).toBe(`node${major(sls.provider.runtime)}`);
  });
  it('engines keep Node 20 support, which the Lambda runtime is not older than', () => {
    expect(pkg.engines.node).toBe('>=20.19.0');
    expect(major(pkg.engines.node)).toBeLessThanOrEqual(major(sls.provider.runtime));
    expect(readFileSync('README.md', 'utf8')).toContain('Node.js 20.19+');
  });
  it('@types/node is the oldest supported Node, pinned, and the one installed', () => {
    const types = pkg.devDependencies['@types/node'] ?? '';
    expect(types).toMatch(/^\d+\.\d+\.\d+$/);
    expect(major(types)).toBe(major(pkg.engines.node));
    expect(lock.packages['node_modules/@types/node']?.version).toBe(types);
  });
});
