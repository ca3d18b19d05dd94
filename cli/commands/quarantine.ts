/**
 * `fleetgate quarantine add | list | release | reject | prepare` — operator decisions on quarantine,
 * written to the device history. `add` quarantines by hand through the same queue and worker as
 * every automatic quarantine (a QuarantineQueue request with `source: operator`); the decisions
 * themselves live in shared/quarantine/operator.ts (the tests use the same code).
 */

import { randomUUID } from 'node:crypto';
import type { QuarantineRequest } from '../../schemas/quarantine-request';
import { NotFoundError } from '../../shared/errors';
import {
  FLEETGATE_EVENT_TYPES,
  prepareAccount,
  quarantinePolicyDocument,
} from '../../shared/iot/prepare-account';
import { IotQuarantineActions } from '../../shared/iot/quarantine-actions';
import {
  type DecisionResult,
  listQuarantine,
  type QuarantineListing,
  quarantineCounts,
  rejectQuarantine,
  releaseQuarantine,
} from '../../shared/quarantine/operator';
import type { ProvisioningStore } from '../../shared/store/provisioning-store';
import { QuarantineStore } from '../../shared/store/quarantine-store';
import {
  CERTIFICATE_ID_RULE,
  type CertificateSource,
  parseCertificateId,
  registryCertificates,
  resolveCertificateId,
  storeCertificates,
} from '../certificate-id';
import { CommandFailure, type Output, UsageError } from '../io';
import type { CommandRegistry } from '../main';
import { operatorName } from '../operator';
import { plural } from '../plural';
import { formatTable, shortId } from '../table';
import { jsonAndTarget, resolveStoreTarget, type StoreTarget, withStore } from '../target';
import { type IotTarget, resolveIotTarget } from '../target-iot';

interface TargetOptions {
  json?: boolean;
  target?: string;
  table?: string;
  stage?: string;
  group?: string;
}

interface DecisionOptions extends TargetOptions {
  reason: string;
}

interface AddOptions extends TargetOptions {
  reason: string;
  wait: string;
}

/** The quarantine thing group: `--group`, QUARANTINE_GROUP_NAME, or serverless.yml's name for the stage. */
function groupName(options: TargetOptions): string {
  if (options.group) return options.group;
  if (process.env.QUARANTINE_GROUP_NAME) return process.env.QUARANTINE_GROUP_NAME;
  const stage = options.target === 'aws' ? (options.stage ?? 'dev') : 'local';
  return `fleetgate-${stage}-quarantine`;
}

function requireIot(options: TargetOptions): IotTarget {
  const target = resolveIotTarget(options);
  if (!target) {
    throw new CommandFailure(
      'no IoT endpoint: start the local stack (`fleetgate local up`), set AWS_ENDPOINT_URL_IOT, or use --target aws',
    );
  }
  return target;
}

function operator(): string {
  return `cli:${operatorName()}`;
}

function describeDecision(result: DecisionResult): string {
  if (result.subject === 'certificate') {
    return `certificate ${result.certificateId}: ${result.decision.toLowerCase()}${result.alreadyDone ? ' (already done)' : ''}`;
  }
  const certificates = result.certificates
    .map((c) => `${c.certificateId.slice(0, 12)}… ${c.result}`)
    .join(', ');
  return `${result.serial}: ${result.from} → ${result.to}${certificates ? ` (certificates: ${certificates})` : ''}`;
}

// ---- list ------------------------------------------------------------------------------------

function printListing(output: Output, listing: QuarantineListing): void {
  if (listing.devices.length > 0) {
    for (const line of formatTable(
      [
        { header: 'DEVICE', value: (d) => d.serial },
        { header: 'REASON', value: (d) => d.reason },
        { header: 'SINCE', value: (d) => d.since },
        { header: 'WAS', value: (d) => d.previousState },
        { header: 'FROM', value: (d) => d.source },
        { header: 'CERTIFICATES', value: (d) => d.certificateIds.length, right: true },
      ],
      listing.devices,
    ))
      output.say(line);
    output.say('');
  }
  if (listing.certificates.length > 0) {
    for (const line of formatTable(
      [
        { header: 'CERTIFICATE', value: (c) => shortId(c.certificateId) },
        { header: 'REASON', value: (c) => c.reason },
        { header: 'SINCE', value: (c) => c.since },
        { header: 'STATUS', value: (c) => c.status },
        { header: 'FROM', value: (c) => c.source },
        { header: 'CLAIMED SERIAL', value: (c) => c.claimedSerial },
      ],
      listing.certificates,
    ))
      output.say(line);
    output.say('');
  }
  const counts = quarantineCounts(listing);
  output.say(
    `${plural(counts.devices, 'device')}, ${plural(counts.certificates, 'certificate')} in quarantine`,
  );
}

async function runList(options: TargetOptions & { reason?: string }, output: Output): Promise<unknown> {
  // Reason codes are UPPER_SNAKE: a filter that can match nothing is a usage error, not an empty list.
  if (options.reason !== undefined && !REASON_CODE.test(options.reason)) {
    throw new UsageError(
      `--reason: ${JSON.stringify(options.reason)} is not a reason code (UPPER_SNAKE, e.g. CLONE_CONCURRENT_SESSIONS)`,
    );
  }
  return withStore(options, output, async (target) => {
    const listing = await listQuarantine(
      { store: target.store, quarantineStore: new QuarantineStore(target.store) },
      options.reason ? { reason: options.reason } : {},
    );
    printListing(output, listing);
    return {
      ...(options.reason ? { reason: options.reason } : {}),
      devices: listing.devices,
      certificates: listing.certificates,
      counts: quarantineCounts(listing),
    };
  });
}

// ---- add -------------------------------------------------------------------------------------

const REASON_CODE = /^[A-Z][A-Z0-9_]{2,63}$/;

/** `--reason`: an UPPER_SNAKE code is the reason code; any other text is a note under OPERATOR_REPORTED. */
export function operatorReason(text: string): { code: string; note?: string } {
  const trimmed = text.trim();
  if (trimmed === '') throw new UsageError('--reason must not be empty');
  return REASON_CODE.test(trimmed) ? { code: trimmed } : { code: 'OPERATOR_REPORTED', note: trimmed };
}

function waitSeconds(value: string): number {
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds < 0)
    throw new UsageError('--wait must be a number of seconds ≥ 0');
  return seconds;
}

/**
 * What an operator named: a serial the store knows (an exact serial wins), else a certificate id —
 * the full 64 hex, or a unique prefix of at least 8 resolved against `sources` (the store's
 * certificates, then the IoT registry's). The store and the queue only ever see full ids.
 * @throws NotFoundError naming both rules when `subject` is neither.
 */
export async function resolveSubject(
  store: ProvisioningStore,
  subject: string,
  sources: readonly CertificateSource[],
): Promise<{ serial: string } | { certificateId: string }> {
  if (await store.getDevice(subject)) return { serial: subject };
  const parsed = parseCertificateId(subject);
  if (parsed.kind === 'invalid') {
    throw new NotFoundError(
      `no device ${subject} in ${store.tableName}, and not a certificate id (${parsed.problem}): give a known serial, or a certificate id (${CERTIFICATE_ID_RULE})`,
    );
  }
  return { certificateId: await resolveCertificateId(subject, sources) };
}

/** Where a certificate id prefix is looked up: the store, then the IoT registry when there is one. */
function certificateSources(target: StoreTarget, iot?: IotTarget): CertificateSource[] {
  return [
    storeCertificates(target.client, target.tableName),
    ...(iot ? [registryCertificates(iot.iot)] : []),
  ];
}

/**
 * The request for a serial the store knows or a certificate id: a request naming an unknown serial
 * alone could never succeed (the worker would dead-letter it), so it is refused here.
 */
async function operatorRequest(
  target: StoreTarget,
  subject: string,
  reason: { code: string; note?: string },
  options: TargetOptions,
): Promise<QuarantineRequest> {
  // The registry is only listed for a prefix the store does not know (resolveCertificateId).
  const iot = resolveIotTarget(options);
  let named: Awaited<ReturnType<typeof resolveSubject>>;
  try {
    named = await resolveSubject(target.store, subject, certificateSources(target, iot));
  } finally {
    iot?.close();
  }
  const actor = operator();
  const name = 'serial' in named ? named.serial : named.certificateId;
  return {
    requestId: `operator:${name}:${randomUUID()}`,
    ...named,
    reason: reason.code,
    evidence: { operator: actor, ...(reason.note ? { note: reason.note } : {}) },
    source: 'operator',
    actor,
    at: new Date().toISOString(),
  };
}

async function waitUntilDone(store: QuarantineStore, requestId: string, seconds: number): Promise<boolean> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    if (await store.isDone(requestId)) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** What the worker made of the request: the device it quarantined (or added evidence to), or the certificate. */
async function addOutcome(store: ProvisioningStore, request: QuarantineRequest) {
  const owner = request.certificateId
    ? (await store.getCertificate(request.certificateId))?.serial
    : undefined;
  const serial = request.serial ?? owner;
  const device = serial ? await store.getDevice(serial) : undefined;
  if (device) {
    const mine = device.quarantine?.requestId === request.requestId;
    return {
      subject: 'device' as const,
      serial: device.serial,
      state: device.state,
      outcome: mine ? ('quarantined' as const) : ('evidence-added' as const),
      ...(device.previousState ? { previousState: device.previousState } : {}),
      ...(device.quarantine ? { quarantine: device.quarantine } : {}),
    };
  }
  const certificate = request.certificateId ? await store.getCertificate(request.certificateId) : undefined;
  return {
    subject: 'certificate' as const,
    certificateId: request.certificateId ?? '',
    outcome: 'quarantined' as const,
    ...(certificate ? { status: certificate.status } : {}),
    ...(certificate?.quarantine ? { quarantine: certificate.quarantine } : {}),
  };
}

function sayAdded(
  output: Output,
  outcome: Awaited<ReturnType<typeof addOutcome>>,
  actor: string,
  note?: string,
): void {
  const why = `${outcome.quarantine?.reason ?? '?'}${note ? `: ${note}` : ''}`;
  if (outcome.subject === 'certificate') {
    output.say(`certificate ${outcome.certificateId} quarantined by ${actor} (${why})`);
    return;
  }
  if (outcome.outcome === 'quarantined') {
    const certificates = outcome.quarantine?.certificateIds?.map((id) => shortId(id)).join(', ');
    output.say(
      `${outcome.serial} quarantined by ${actor} (${why}): was ${outcome.previousState ?? '?'}${certificates ? `; certificates deactivated: ${certificates}` : ''}`,
    );
    return;
  }
  output.say(
    `${outcome.serial} is ${outcome.state}${outcome.quarantine ? ` since ${outcome.quarantine.at} (${outcome.quarantine.reason})` : ''}: your report is in its history as evidence`,
  );
}

async function sendRequest(request: QuarantineRequest, options: AddOptions): Promise<string> {
  const [{ resolveQuarantineQueue }, { QuarantineQueue }] = await Promise.all([
    import('../target-queue'),
    import('../../shared/quarantine-queue'),
  ]);
  const queue = await resolveQuarantineQueue(options);
  try {
    await new QuarantineQueue(queue.sqs, queue.url).send(request);
    return queue.url;
  } finally {
    queue.close();
  }
}

async function runAdd(subject: string, options: AddOptions, output: Output): Promise<unknown> {
  const reason = operatorReason(options.reason);
  const wait = waitSeconds(options.wait);
  return withStore(options, output, async (target) => {
    const request = await operatorRequest(target, subject, reason, options);
    const queue = await sendRequest(request, options);
    const queued = { requestId: request.requestId, reason: request.reason, actor: request.actor, queue };
    if (wait === 0) {
      output.say(`queued ${request.requestId} on ${queue}`);
      return { ...queued, processed: false };
    }
    if (!(await waitUntilDone(new QuarantineStore(target.store), request.requestId, wait))) {
      throw new CommandFailure(
        `queued ${request.requestId}, not carried out within ${wait} s: is quarantineDevice running? (\`fleetgate dlq list\`)`,
        { ...queued, processed: false },
      );
    }
    const outcome = await addOutcome(target.store, request);
    sayAdded(output, outcome, request.actor ?? operator(), reason.note);
    return { ...queued, processed: true, ...outcome };
  });
}

// ---- release / reject / prepare ----------------------------------------------------------------

async function runDecision(
  decide: typeof releaseQuarantine,
  subject: string,
  options: DecisionOptions,
  output: Output,
): Promise<unknown> {
  const iotTarget = requireIot(options);
  const target = await resolveStoreTarget(options, output);
  try {
    // A serial, or the id (or a unique prefix) of a certificate the store records.
    const named = await resolveSubject(target.store, subject, certificateSources(target));
    const result = await decide(
      {
        store: target.store,
        quarantineStore: new QuarantineStore(target.store),
        iot: new IotQuarantineActions(iotTarget.iot),
        quarantineGroupName: groupName(options),
      },
      {
        subject: 'serial' in named ? named.serial : named.certificateId,
        reason: options.reason,
        actor: operator(),
        now: new Date().toISOString(),
        newId: randomUUID,
      },
    );
    output.say(describeDecision(result));
    return result;
  } finally {
    iotTarget.close();
    await target.close();
  }
}

async function runPrepare(
  options: TargetOptions & { account: string; region: string },
  output: Output,
): Promise<unknown> {
  const iotTarget = requireIot(options);
  try {
    const name = groupName(options);
    const record = await prepareAccount(iotTarget.iot, {
      thingGroupName: name,
      policyName: name,
      policyDocument: quarantinePolicyDocument({ region: options.region, accountId: options.account }),
      eventTypes: FLEETGATE_EVENT_TYPES,
    });
    output.say(
      `${name}: group ${record.createdGroup ? 'created' : 'present'}, policy ${record.createdPolicy ? 'created' : 'present'}, events enabled: ${record.enabledEvents.join(', ') || 'none needed'}`,
    );
    return record;
  } finally {
    iotTarget.close();
  }
}

/** `fleetgate quarantine …` */
export function registerQuarantineCommands({ program, run }: CommandRegistry): void {
  const quarantine = program
    .command('quarantine')
    .description('Quarantine a device or certificate by hand; list quarantined ones; release or reject them');
  const withTarget = (command: ReturnType<typeof quarantine.command>) =>
    jsonAndTarget(command)
      .option('--table <name>', 'table name (default: the stack’s, or TABLE_NAME)')
      .option('--stage <stage>', 'stage of the deployed names with --target aws (default dev)')
      .option(
        '--group <name>',
        'quarantine thing group (default: QUARANTINE_GROUP_NAME or fleetgate-<stage>-quarantine)',
      );

  withTarget(
    quarantine
      .command('add')
      .description(
        'Quarantine a device (serial) or certificate (id) by hand, through QuarantineQueue like any automatic quarantine',
      )
      .argument('<subject>', 'device serial, or certificate id (64 hex, or a unique prefix of at least 8)')
      .requiredOption(
        '--reason <code|text>',
        'an UPPER_SNAKE reason code (e.g. STOLEN), or text recorded under OPERATOR_REPORTED',
      )
      .option('--wait <seconds>', 'wait this long for the worker to carry it out (0: only queue it)', '30'),
  ).action((subject: string, options: AddOptions) =>
    run(options.json, (output) => runAdd(subject, options, output)),
  );

  withTarget(
    quarantine
      .command('list')
      .description('Devices in QUARANTINED and quarantined certificates of unknown devices')
      .option('--reason <code>', 'only this reason code (UPPER_SNAKE, e.g. CLONE_PUBLIC_KEY)'),
  ).action((options: TargetOptions & { reason?: string }) =>
    run(options.json, (output) => runList(options, output)),
  );

  for (const [name, decide, summary] of [
    [
      'release',
      releaseQuarantine,
      'Certificates active again, thing out of the quarantine group, previous state restored',
    ],
    ['reject', rejectQuarantine, 'Certificates REVOKED, device REVOKED: denied by every flow from now on'],
  ] as const) {
    withTarget(
      quarantine
        .command(name)
        .description(summary)
        .argument(
          '<serial>',
          'device serial (or the id, or a unique prefix of at least 8 hex, of a quarantined certificate of an unknown device)',
        )
        .requiredOption('--reason <text>', 'why (written to the history)'),
    ).action((subject: string, options: DecisionOptions) =>
      run(options.json, (output) => runDecision(decide, subject, options, output)),
    );
  }

  quarantine
    .command('prepare')
    .description(
      'Create the quarantine thing group with its deny policy and enable the IoT event configurations',
    )
    .option('--json', 'print one JSON document')
    .option('--target <target>', 'local (default) or aws')
    .option('--stage <stage>', 'stage of the deployed names with --target aws (default dev)')
    .option('--group <name>', 'quarantine thing group (and policy) name')
    .option('--account <id>', 'account id for the policy ARNs', '123456789012')
    .option('--region <region>', 'region for the policy ARNs', process.env.AWS_REGION ?? 'us-east-1')
    .action((options: TargetOptions & { account: string; region: string }) =>
      run(options.json, (output) => runPrepare(options, output)),
    );
}
