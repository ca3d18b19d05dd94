#!/usr/bin/env node
// The `fleetgate` command. The CLI is TypeScript run through tsx, so a clone works after `npm ci`
// without a build step.
import { register } from 'tsx/esm/api';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
register();
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
