/**
 * `fleetgate quarantine list | release | reject | prepare` — operator decisions on quarantined
 * devices, written to the device history. The decisions themselves live in
 * shared/quarantine/operator.ts (the tests use the same code).
 */
import { randomUUID } from 'node:crypto';
import {
  FLEETGATE_EVENT_TYPES,
  prepareAccount,
  quarantinePolicyDocument,
} from '../../shared/iot/prepare-account';
import { IotQuarantineActions } from '../../shared/iot/quarantine-actions';
import {
  type DecisionResult,
  listQuarantine,
  rejectQuarantine,
  releaseQuarantine,
} from '../../shared/quarantine/operator';
import { QuarantineStore } from '../../shared/store/quarantine-store';
import { CommandFailure } from '../io';
import { type CommandRegistry, contract } from '../main';
import { resolveStoreTarget } from '../target';
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

function describeDecision(result: DecisionResult): string {
  if (result.subject === 'certificate') {
    return `certificate ${result.certificateId}: ${result.decision.toLowerCase()}${result.alreadyDone ? ' (already done)' : ''}`;
  }
  const certificates = result.certificates
    .map((c) => `${c.certificateId.slice(0, 12)}… ${c.result}`)
    .join(', ');
  return `${result.serial}: ${result.from} → ${result.to}${certificates ? ` (certificates: ${certificates})` : ''}`;
}

/** `fleetgate quarantine …` */
export function registerQuarantineCommands({ program, setExitCode }: CommandRegistry): void {
  const quarantine = program
    .command('quarantine')
    .description('List quarantined devices and certificates; release or reject them');
  const withTarget = (command: ReturnType<typeof quarantine.command>) =>
    command
      .option('--json', 'print one JSON document')
      .option('--target <target>', 'local (default) or aws')
      .option('--table <name>', 'table name (default: the stack’s, or TABLE_NAME)')
      .option('--stage <stage>', 'stage of the deployed names with --target aws (default dev)')
      .option(
        '--group <name>',
        'quarantine thing group (default: QUARANTINE_GROUP_NAME or fleetgate-<stage>-quarantine)',
      );

  withTarget(
    quarantine
      .command('list')
      .description('Devices in QUARANTINED and quarantined certificates of unknown devices')
      .option('--reason <code>', 'only this reason code'),
  ).action(async (options: TargetOptions & { reason?: string }) => {
    setExitCode(
      await contract(Boolean(options.json), async (output) => {
        const target = await resolveStoreTarget(options, output);
        try {
          const listing = await listQuarantine(
            { store: target.store, quarantineStore: new QuarantineStore(target.store) },
            options.reason ? { reason: options.reason } : {},
          );
          for (const device of listing.devices) {
            output.say(
              `${device.serial}  ${device.reason ?? '?'}  since ${device.since ?? '?'}  (was ${device.previousState ?? '?'}, from ${device.source ?? '?'})`,
            );
          }
          for (const certificate of listing.certificates) {
            output.say(
              `certificate ${certificate.certificateId}  ${certificate.reason}  since ${certificate.since}${certificate.claimedSerial ? `  (claimed ${certificate.claimedSerial})` : ''}`,
            );
          }
          output.say(
            `${listing.devices.length} devices, ${listing.certificates.length} certificates in quarantine`,
          );
          return {
            ...(options.reason ? { reason: options.reason } : {}),
            devices: listing.devices,
            certificates: listing.certificates,
            counts: { devices: listing.devices.length, certificates: listing.certificates.length },
          };
        } finally {
          await target.close();
        }
      }),
    );
  });

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
        .argument('<serial>', 'device serial (or the id of a quarantined certificate of an unknown device)')
        .requiredOption('--reason <text>', 'why (written to the history)'),
    ).action(async (subject: string, options: DecisionOptions) => {
      setExitCode(
        await contract(Boolean(options.json), async (output) => {
          const iotTarget = requireIot(options);
          const target = await resolveStoreTarget(options, output);
          try {
            const result = await decide(
              {
                store: target.store,
                quarantineStore: new QuarantineStore(target.store),
                iot: new IotQuarantineActions(iotTarget.iot),
                quarantineGroupName: groupName(options),
              },
              {
                subject,
                reason: options.reason,
                actor: `cli:${process.env.USER ?? 'unknown'}`,
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
        }),
      );
    });
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
    .action(async (options: TargetOptions & { account: string; region: string }) => {
      setExitCode(
        await contract(Boolean(options.json), async (output) => {
          const iotTarget = requireIot(options);
          try {
            const name = groupName(options);
            const record = await prepareAccount(iotTarget.iot, {
              thingGroupName: name,
              policyName: name,
              policyDocument: quarantinePolicyDocument({
                region: options.region,
                accountId: options.account,
              }),
              eventTypes: FLEETGATE_EVENT_TYPES,
            });
            output.say(
              `${name}: group ${record.createdGroup ? 'created' : 'present'}, policy ${record.createdPolicy ? 'created' : 'present'}, events enabled: ${record.enabledEvents.join(', ') || 'none needed'}`,
            );
            return record;
          } finally {
            iotTarget.close();
          }
        }),
      );
    });
}
