/**
 * Custom::FleetgateAccount against the IoT emulator, with the CloudFormation response PUT to a
 * local HTTP server standing in for the pre-signed ResponseURL.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Logger } from '@aws-lambda-powertools/logger';
import {
  CreateThingGroupCommand,
  DescribeEventConfigurationsCommand,
  DescribeThingGroupCommand,
  GetPolicyCommand,
  type IoTClient,
  ListAttachedPoliciesCommand,
  UpdateEventConfigurationsCommand,
} from '@aws-sdk/client-iot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CustomResourceEvent } from '../../../functions/prepare-account/cfn-response';
import { createHandler, fromPhysicalId } from '../../../functions/prepare-account/create-handler';
import { type IotEmulator, startIotEmulator } from '../../../local/iot-emulator/index';
import { lambdaContext } from '../../support/lambda';
import { iotClientFor } from '../../support/quarantine';

let emulator: IotEmulator;
let iot: IoTClient;
let server: Server;
let responseUrl: string;
const responses: Array<{ contentType: string | undefined; body: Record<string, unknown> }> = [];

beforeAll(async () => {
  emulator = await startIotEmulator();
  iot = iotClientFor(emulator);
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      responses.push({
        contentType: req.headers['content-type'],
        body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>,
      });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  responseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/signed?X-Amz-Signature=abc`;
});
afterAll(async () => {
  iot?.destroy();
  await new Promise((resolve) => server?.close(resolve));
  await emulator?.stop();
});

const handler = () =>
  createHandler({
    iot: iotClientFor(emulator),
    logger: new Logger({ serviceName: 'fleetgate', logLevel: 'SILENT' }),
  });

function cfnEvent(
  requestType: CustomResourceEvent['RequestType'],
  overrides: Partial<CustomResourceEvent> = {},
) {
  return {
    RequestType: requestType,
    ResponseURL: responseUrl,
    StackId: 'arn:aws:cloudformation:us-east-1:123456789012:stack/fleetgate-dev/1234',
    RequestId: `req-${requestType}`,
    ResourceType: 'Custom::FleetgateAccount',
    LogicalResourceId: 'FleetgateAccount',
    ResourceProperties: { ThingGroupName: 'cr-quarantine', PolicyName: 'cr-quarantine' },
    ...overrides,
  } satisfies CustomResourceEvent;
}

async function exists(call: () => Promise<unknown>): Promise<boolean> {
  try {
    await call();
    return true;
  } catch (error) {
    if ((error as { name?: string }).name === 'ResourceNotFoundException') return false;
    throw error;
  }
}

describe('Custom::FleetgateAccount', () => {
  it('creates the group with the deny policy attached, enables the events, keeps its id on Update and undoes only its own work on Delete', async () => {
    // Act: Create
    const created = await handler()(cfnEvent('Create'), lambdaContext('prepareAccount', 60_000));
    const id = created.PhysicalResourceId;
    const attached = await iot.send(
      new ListAttachedPoliciesCommand({
        target: 'arn:aws:iot:us-east-1:123456789012:thinggroup/cr-quarantine',
      }),
    );
    const policy = await iot.send(new GetPolicyCommand({ policyName: 'cr-quarantine' }));
    const events = await iot.send(new DescribeEventConfigurationsCommand({}));
    // Assess: Create
    expect(created.Status).toBe('SUCCESS');
    expect(fromPhysicalId(id)).toMatchObject({
      createdGroup: true,
      createdPolicy: true,
      attachedPolicy: true,
    });
    expect(attached.policies?.map((p) => p.policyName)).toEqual(['cr-quarantine']);
    expect(policy.policyDocument).toContain(
      // The IoT policy variable survives rendering; the account and region are substituted.
      `arn:aws:iot:us-east-1:123456789012:topic/fleetgate/quarantine/${'${'}iot:Connection.Thing.ThingName}/remediation`,
    );
    for (const type of ['THING', 'THING_GROUP_MEMBERSHIP', 'CERTIFICATE', 'CA_CERTIFICATE'] as const) {
      expect(events.eventConfigurations?.[type]?.Enabled).toBe(true);
    }
    expect(responses.at(-1)).toMatchObject({
      contentType: '',
      body: {
        Status: 'SUCCESS',
        PhysicalResourceId: id,
        RequestId: 'req-Create',
        LogicalResourceId: 'FleetgateAccount',
      },
    });

    // Act: Update with the same names
    const updated = await handler()(
      cfnEvent('Update', { PhysicalResourceId: id }),
      lambdaContext('prepareAccount', 60_000),
    );
    // Assess: same id (a new one would make CloudFormation delete the group still in use)
    expect(updated).toMatchObject({ Status: 'SUCCESS', PhysicalResourceId: id });

    // Act: Delete
    const deleted = await handler()(
      cfnEvent('Delete', { PhysicalResourceId: id }),
      lambdaContext('prepareAccount', 60_000),
    );
    // Assess
    expect(deleted.Status).toBe('SUCCESS');
    expect(
      await exists(() => iot.send(new DescribeThingGroupCommand({ thingGroupName: 'cr-quarantine' }))),
    ).toBe(false);
    expect(await exists(() => iot.send(new GetPolicyCommand({ policyName: 'cr-quarantine' })))).toBe(false);
    // Event configurations are account-wide: left on (another stage may rely on them).
    const after = await iot.send(new DescribeEventConfigurationsCommand({}));
    expect(after.eventConfigurations?.THING?.Enabled).toBe(true);
  });

  it('leaves the event configurations as the operator had them, and on for a second stage, when a stage is deleted', async () => {
    // Prepare: the operator had CERTIFICATE events on and the others off before fleetgate.
    const isolated = await startIotEmulator();
    const client = iotClientFor(isolated);
    try {
      await client.send(
        new UpdateEventConfigurationsCommand({
          eventConfigurations: {
            THING: { Enabled: false },
            THING_GROUP_MEMBERSHIP: { Enabled: false },
            CERTIFICATE: { Enabled: true },
            CA_CERTIFICATE: { Enabled: false },
          },
        }),
      );
      const run = createHandler({
        iot: client,
        logger: new Logger({ serviceName: 'fleetgate', logLevel: 'SILENT' }),
      });
      const stage = (name: string) => ({
        ResourceProperties: { ThingGroupName: `${name}-quarantine`, PolicyName: `${name}-quarantine` },
      });
      // Act: two stages deployed, then the first one deleted
      const dev = await run(cfnEvent('Create', stage('dev')), lambdaContext('prepareAccount', 60_000));
      const prod = await run(cfnEvent('Create', stage('prod')), lambdaContext('prepareAccount', 60_000));
      const deleted = await run(
        cfnEvent('Delete', { ...stage('dev'), PhysicalResourceId: dev.PhysicalResourceId }),
        lambdaContext('prepareAccount', 60_000),
      );
      const after = await client.send(new DescribeEventConfigurationsCommand({}));
      // Assess: dev turned on only what was off; nothing was switched off on delete.
      expect(fromPhysicalId(dev.PhysicalResourceId)?.enabledEvents).toEqual([
        'THING',
        'THING_GROUP_MEMBERSHIP',
        'CA_CERTIFICATE',
      ]);
      expect(fromPhysicalId(prod.PhysicalResourceId)?.enabledEvents).toEqual([]);
      expect(deleted.Status).toBe('SUCCESS');
      for (const type of ['THING', 'THING_GROUP_MEMBERSHIP', 'CERTIFICATE', 'CA_CERTIFICATE'] as const) {
        expect(after.eventConfigurations?.[type]?.Enabled, type).toBe(true);
      }
      expect(
        await exists(() => client.send(new DescribeThingGroupCommand({ thingGroupName: 'dev-quarantine' }))),
      ).toBe(false);
      expect(
        await exists(() => client.send(new DescribeThingGroupCommand({ thingGroupName: 'prod-quarantine' }))),
      ).toBe(true);
    } finally {
      client.destroy();
      await isolated.stop();
    }
  });

  it('leaves a group it did not create in place on Delete', async () => {
    // Prepare: an operator made the group by hand.
    await iot.send(new CreateThingGroupCommand({ thingGroupName: 'hand-made' }));
    const props = { ResourceProperties: { ThingGroupName: 'hand-made', PolicyName: 'hand-made-policy' } };
    const created = await handler()(cfnEvent('Create', props), lambdaContext('prepareAccount', 60_000));
    // Act
    await handler()(
      cfnEvent('Delete', { ...props, PhysicalResourceId: created.PhysicalResourceId }),
      lambdaContext('prepareAccount', 60_000),
    );
    // Assess
    expect(fromPhysicalId(created.PhysicalResourceId)).toMatchObject({
      createdGroup: false,
      createdPolicy: true,
    });
    expect(await exists(() => iot.send(new DescribeThingGroupCommand({ thingGroupName: 'hand-made' })))).toBe(
      true,
    );
    expect(await exists(() => iot.send(new GetPolicyCommand({ policyName: 'hand-made-policy' })))).toBe(
      false,
    );
  });

  it('answers FAILED (never nothing) when the properties are wrong, and a Delete of that failure is a no-op', async () => {
    // Act
    const failed = await handler()(
      cfnEvent('Create', { ResourceProperties: {} }),
      lambdaContext('prepareAccount', 60_000),
    );
    const deleted = await handler()(
      cfnEvent('Delete', { PhysicalResourceId: failed.PhysicalResourceId }),
      lambdaContext('prepareAccount', 60_000),
    );
    // Assess
    expect(failed).toMatchObject({ Status: 'FAILED', Reason: expect.stringContaining('ThingGroupName') });
    expect(responses.at(-2)?.body).toMatchObject({ Status: 'FAILED' });
    expect(deleted.Status).toBe('SUCCESS');
  });
});
