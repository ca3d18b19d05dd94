#!/usr/bin/env node
// `npm run package`: builds the deployment artifacts and the CloudFormation template offline
// (`serverless package`), with dummy credentials so no AWS account is needed or touched.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const cli = join(dirname(require.resolve('osls/package.json')), 'bin', 'serverless.js');
const args = process.argv.slice(2);
const result = spawnSync(
  process.execPath,
  [cli, 'package', '--stage', 'dev', '--region', 'us-east-1', ...args],
  {
    stdio: 'inherit',
    env: {
      ...process.env,
      AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID ?? 'AKIAIOSFODNN7EXAMPLE',
      AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY ?? 'package-offline-dummy-secret',
      AWS_SDK_LOAD_CONFIG: '0',
      SLS_TELEMETRY_DISABLED: '1',
      SLS_NOTIFICATIONS_MODE: 'off',
      SLS_DEPRECATION_DISABLE: '*',
    },
  },
);
process.exit(result.status ?? 1);
