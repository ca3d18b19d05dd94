import { DEVICE_STATES, type DeviceState } from '../../shared/domain/device-state';
import type { ProvisioningStore } from '../../shared/store/provisioning-store';
import type { DeviceRecord, HistoryEntry } from '../../shared/store/records';
import { CommandFailure, type Output, UsageError } from '../io';
import type { CommandRegistry } from '../main';
import { formatTable, shortId } from '../table';
import { jsonAndTarget, withStore } from '../target';

interface StoreOptions {
  json?: boolean;
  target?: string;
  table?: string;
}

interface ListOptions extends StoreOptions {
  state?: string;
  limit: string;
}

/**
 * The certificate to show: the proven one, else the one issued or registered but not yet proven
 * (a PROVISIONING device, e.g. a factory-imported one that never connected), marked `(pending)`.
 */
export function certificateCell(device: DeviceRecord): string | undefined {
  if (device.certificateId) return shortId(device.certificateId);
  return device.pendingCertificateId ? `${shortId(device.pendingCertificateId)} (pending)` : undefined;
}

function describeDevice(device: DeviceRecord): string {
  const shown = certificateCell(device);
  const cert = shown ? ` cert ${shown}` : '';
  return `${device.serial}  ${device.state}${device.thingName ? `  ${device.thingName}` : ''}${cert}`;
}

/** `devices list` for people: one row per device under a header, columns aligned. */
export function deviceTable(devices: readonly DeviceRecord[]): string[] {
  return formatTable(
    [
      { header: 'SERIAL', value: (d) => d.serial },
      { header: 'STATE', value: (d) => d.state },
      { header: 'THING', value: (d) => d.thingName },
      { header: 'CERTIFICATE', value: (d) => certificateCell(d) },
      { header: 'UPDATED', value: (d) => d.updatedAt },
    ],
    devices,
  );
}

function listSettings(options: ListOptions): { limit: number; state?: DeviceState } {
  const limit = Number(options.limit);
  if (!Number.isInteger(limit) || limit < 1) throw new UsageError('--limit must be a positive integer');
  const state = options.state?.toUpperCase();
  if (state !== undefined && !(DEVICE_STATES as readonly string[]).includes(state)) {
    throw new UsageError(`--state must be one of ${DEVICE_STATES.join(', ')} (got "${options.state}")`);
  }
  return state ? { limit, state: state as DeviceState } : { limit };
}

/** Up to `limit` devices in `states` (StateIndex), and whether there were more. */
async function devicesIn(
  store: ProvisioningStore,
  states: readonly DeviceState[],
  limit: number,
): Promise<{ found: DeviceRecord[]; truncated: boolean }> {
  const found: DeviceRecord[] = [];
  for (const [index, each] of states.entries()) {
    let cursor: string | undefined;
    do {
      const page = await store.listDevicesByState(each, {
        limit: limit - found.length,
        ...(cursor ? { cursor } : {}),
      });
      found.push(...page.items);
      cursor = page.cursor;
    } while (cursor && found.length < limit);
    if (found.length >= limit) return { found, truncated: Boolean(cursor) || index < states.length - 1 };
  }
  return { found, truncated: false };
}

async function runList(options: ListOptions, output: Output): Promise<unknown> {
  const { limit, state } = listSettings(options);
  return withStore(options, output, async (target) => {
    const { found, truncated } = await devicesIn(target.store, state ? [state] : DEVICE_STATES, limit);
    const sorted = found.sort((a, b) => a.serial.localeCompare(b.serial));
    if (sorted.length > 0) for (const line of deviceTable(sorted)) output.say(line);
    output.say(`${sorted.length} device(s)${truncated ? ` (first ${limit}; use --limit)` : ''}`);
    return { devices: sorted, count: sorted.length, truncated, ...(state ? { state } : {}) };
  });
}

async function runGet(serial: string, options: StoreOptions, output: Output): Promise<unknown> {
  return withStore(options, output, async (target) => {
    const device = await target.store.getDevice(serial);
    if (!device) throw new CommandFailure(`no device ${serial} in ${target.tableName}`);
    output.say(describeDevice(device));
    output.say(JSON.stringify(device, null, 2));
    return { device };
  });
}

/** The operator's own words on a quarantine (`quarantine add --reason "free text"`). */
function noteOf(entry: HistoryEntry): string | undefined {
  const detail = entry.detail as { evidence?: { note?: unknown } } | undefined;
  const note = detail?.evidence?.note;
  return typeof note === 'string' && note ? note : undefined;
}

/** One history entry for people: when, what, the move, who, and why (code and note). */
export function historyLine(entry: HistoryEntry): string {
  const move = entry.from || entry.to ? ` ${entry.from ?? '∅'} → ${entry.to ?? '∅'}` : '';
  const note = noteOf(entry);
  const why = entry.reason ? ` (${entry.reason}${note ? `: ${note}` : ''})` : note ? ` (${note})` : '';
  return `${entry.at}  ${entry.event}${move}  by ${entry.actor}${why}`;
}

async function runHistory(serial: string, options: StoreOptions, output: Output): Promise<unknown> {
  return withStore(options, output, async (target) => {
    const device = await target.store.getDevice(serial);
    if (!device) throw new CommandFailure(`no device ${serial} in ${target.tableName}`);
    const history = await target.store.history(serial);
    for (const entry of history) output.say(historyLine(entry));
    return { serial, state: device.state, history };
  });
}

/** `fleetgate devices get <serial> | list [--state S] | history <serial>` */
export function registerDevicesCommands({ program, run }: CommandRegistry): void {
  const devices = program.command('devices').description('Read devices from the provisioning store');
  const withStoreOptions = (command: ReturnType<typeof devices.command>) =>
    jsonAndTarget(command).option('--table <name>', 'table name (default: the stack’s, or TABLE_NAME)');

  withStoreOptions(
    devices.command('get').description('Show one device').argument('<serial>', 'device serial'),
  ).action((serial: string, options: StoreOptions) =>
    run(options.json, (output) => runGet(serial, options, output)),
  );

  withStoreOptions(
    devices
      .command('list')
      .description('List devices, by state')
      .option('--state <state>', `one of ${DEVICE_STATES.join(', ')} (default: all)`)
      .option('--limit <n>', 'at most this many devices', '100'),
  ).action((options: ListOptions) => run(options.json, (output) => runList(options, output)));

  withStoreOptions(
    devices
      .command('history')
      .description("Show a device's audit trail")
      .argument('<serial>', 'device serial'),
  ).action((serial: string, options: StoreOptions) =>
    run(options.json, (output) => runHistory(serial, options, output)),
  );
}
