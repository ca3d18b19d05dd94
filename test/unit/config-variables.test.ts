/**
 * The configuration table lives once: shared/config-variables.ts lists exactly the variables
 * shared/config.ts reads, and the README shows exactly that list (`npm run docs:config` writes it).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CONFIG_ENV_NAMES } from '../../shared/config';
import { CONFIG_VARIABLES, configTable } from '../../shared/config-variables';

describe('the configuration table', () => {
  it('lists exactly the variables loadConfig reads', () => {
    expect(
      CONFIG_VARIABLES.filter((variable) => !variable.readByPowertools)
        .map((variable) => variable.name)
        .sort(),
    ).toEqual([...CONFIG_ENV_NAMES].sort());
  });

  it('is what the README shows (run `npm run docs:config` after changing the list)', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const begin = readme.indexOf('\n', readme.indexOf('<!-- config:begin')) + 1;
    const end = readme.indexOf('<!-- config:end -->');
    expect(readme.slice(begin, end).trim()).toBe(configTable());
  });
});
