import { DEVICE_STATES, type DeviceState } from '../../shared/domain/device-state';
import type { DeviceRecord } from '../../shared/store/records';
import { CommandFailure, UsageError } from '../io';
import { type CommandRegistry, contract } from '../main';
import { resolveStoreTarget } from '../target';

interface StoreOptions {
  json?: boolean;
  target?: string;
  table?: string;
}

function describeDevice(device: DeviceRecord): string {
  const cert = device.certificateId ? ` cert ${device.certificateId.slice(0, 12)}…` : '';
  return `${device.serial}  ${device.state}${device.thingName ? `  ${device.thingName}` : ''}${cert}`;
}

/** `fleetgate devices get <serial> | list [--state S] | history <serial>` */
export function registerDevicesCommands({ program, setExitCode }: CommandRegistry): void {
  const devices = program.command('devices').description('Read devices from the provisioning store');
  const withStore = (command: ReturnType<typeof devices.command>) =>
    command
      .option('--json', 'print one JSON document')
      .option('--target <target>', 'local (default) or aws')
      .option('--table <name>', 'table name (default: the stack’s, or TABLE_NAME)');

  withStore(
    devices.command('get').description('Show one device').argument('<serial>', 'device serial'),
  ).action(async (serial: string, options: StoreOptions) => {
    setExitCode(
      await contract(Boolean(options.json), async (output) => {
        const target = await resolveStoreTarget(options, output);
        try {
          const device = await target.store.getDevice(serial);
          if (!device) throw new CommandFailure(`no device ${serial} in ${target.tableName}`);
          output.say(describeDevice(device));
          output.say(JSON.stringify(device, null, 2));
          return { device };
        } finally {
          await target.close();
        }
      }),
    );
  });

  withStore(
    devices
      .command('list')
      .description('List devices, by state')
      .option('--state <state>', `one of ${DEVICE_STATES.join(', ')} (default: all)`)
      .option('--limit <n>', 'at most this many devices', '100'),
  ).action(async (options: StoreOptions & { state?: string; limit: string }) => {
    setExitCode(
      await contract(Boolean(options.json), async (output) => {
        const limit = Number(options.limit);
        if (!Number.isInteger(limit) || limit < 1) throw new UsageError('--limit must be a positive integer');
        const state = options.state?.toUpperCase();
        if (state !== undefined && !(DEVICE_STATES as readonly string[]).includes(state)) {
          throw new UsageError(`--state must be one of ${DEVICE_STATES.join(', ')} (got "${options.state}")`);
        }
        const states = state ? [state as DeviceState] : [...DEVICE_STATES];
        const target = await resolveStoreTarget(options, output);
        try {
          const found: DeviceRecord[] = [];
          let truncated = false;
          for (const each of states) {
            let cursor: string | undefined;
            do {
              const page = await target.store.listDevicesByState(each, {
                limit: limit - found.length,
                ...(cursor ? { cursor } : {}),
              });
              found.push(...page.items);
              cursor = page.cursor;
            } while (cursor && found.length < limit);
            if (found.length >= limit) {
              truncated = Boolean(cursor) || each !== states[states.length - 1];
              break;
            }
          }
          const sorted = found.sort((a, b) => a.serial.localeCompare(b.serial));
          for (const device of sorted) output.say(describeDevice(device));
          output.say(`${sorted.length} device(s)${truncated ? ` (first ${limit}; use --limit)` : ''}`);
          return { devices: sorted, count: sorted.length, truncated, ...(state ? { state } : {}) };
        } finally {
          await target.close();
        }
      }),
    );
  });

  withStore(
    devices
      .command('history')
      .description("Show a device's audit trail")
      .argument('<serial>', 'device serial'),
  ).action(async (serial: string, options: StoreOptions) => {
    setExitCode(
      await contract(Boolean(options.json), async (output) => {
        const target = await resolveStoreTarget(options, output);
        try {
          const device = await target.store.getDevice(serial);
          if (!device) throw new CommandFailure(`no device ${serial} in ${target.tableName}`);
          const history = await target.store.history(serial);
          for (const entry of history) {
            const move = entry.from || entry.to ? ` ${entry.from ?? '∅'} → ${entry.to ?? '∅'}` : '';
            output.say(
              `${entry.at}  ${entry.event}${move}  by ${entry.actor}${entry.reason ? ` (${entry.reason})` : ''}`,
            );
          }
          return { serial, state: device.state, history };
        } finally {
          await target.close();
        }
      }),
    );
  });
}
