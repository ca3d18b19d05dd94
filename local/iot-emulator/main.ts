/**
 * Runs one emulator in the foreground: `tsx local/iot-emulator/main.ts [--port N] [--quotas aws-default]`.
 * Prints one JSON line `{"endpoint": ...}` once listening; stops on SIGINT/SIGTERM.
 */
import { parseArgs } from 'node:util';
import { startIotEmulator } from './index';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string' },
    quotas: { type: 'string' },
    'account-id': { type: 'string' },
    region: { type: 'string' },
  },
});

const emulator = await startIotEmulator({
  port: values.port ? Number(values.port) : undefined,
  host: values.host,
  accountId: values['account-id'],
  region: values.region,
  faults: values.quotas === 'aws-default' ? { quotas: 'aws-default' } : undefined,
});
process.stdout.write(`${JSON.stringify({ endpoint: emulator.endpoint, accountId: emulator.accountId })}\n`);

const shutdown = () => {
  void emulator.stop().then(() => process.exit(0));
};
process.once('SIGINT', shutdown);
process.once('SIGTERM', shutdown);
