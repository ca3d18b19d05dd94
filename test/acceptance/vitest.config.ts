import { defineConfig } from 'vitest/config';

/**
 * `npm run test:acceptance` (through `run.ts`, which sets the target): the flows of
 * `test/acceptance/flows/` against one local stack or one AWS deployment. The unit tests next to
 * this file are part of `npm test`, not of this run.
 */
export default defineConfig({
  test: {
    root: new URL('../..', import.meta.url).pathname,
    include: ['test/acceptance/flows/**/*.acceptance.ts'],
    globalSetup: ['test/acceptance/global-setup.ts'],
    reporters: ['default', './test/support/summary-reporter.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
