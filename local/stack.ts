/**
 * The local stack: DynamoDB Local with the provisioning table, local SQS with the queues and DLQs,
 * the IoT emulator, the rules engine and one poller per SQS event source — all read from
 * serverless.yml — with the functions running in-process, unchanged, against those endpoints.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IoTClient } from '@aws-sdk/client-iot';
import { GetQueueAttributesCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import {
  FLEETGATE_EVENT_TYPES,
  prepareAccount,
  quarantinePolicyDocument,
} from '../shared/iot/prepare-account';
import { type DynamoDbLocal, startDynamoDbLocal } from './dynamodb-local';
import { type LocalHttpApi, startHttpApi } from './http-api';
import { AccessDeniedError, Authorizer, functionAccessKeyId, UnmappedCallError } from './iam/authorizer';
import { startAwsGateway } from './iam/gateway';
import { iotCheck } from './iam/requests';
import { ServiceAuthorizationData } from './iam/service-data';
import { IotError } from './iot-emulator/errors';
import { type IotEmulator, startIotEmulator } from './iot-emulator/index';
import { type MaterializedIotResource, materializeIotResources } from './iot-resources';
import { LocalFunctions } from './lambda-runtime';
import { LOCAL_CREDENTIALS, type LocalSqs, startLocalSqs } from './local-sqs';
import {
  type ConnectionRefusal,
  type EndpointClosure,
  type MqttBroker,
  type MqttBrokerOptions,
  startMqttBroker,
  type TlsFailure,
} from './mqtt/broker';
import { projectRoot } from './paths';
import { MessageLedger, type MessageTrace, QueuePoller } from './queue-poller';
import { type PublishMeta, type RuleOutcome, RulesEngine } from './rules-engine';
import { type LocalS3, startLocalS3 } from './s3-local';
import { loadServerlessConfig } from './serverless-config';
import { STACK_LOG_SOURCES } from './stack-file';
import {
  buildStackModel,
  type DeclaredIotNames,
  declaredIotNames,
  declaredIotResources,
  type FunctionSpec,
  type IotResourceSpec,
  type StackModel,
} from './stack-model';
import { ensureTable } from './table';

export interface LocalStackOptions {
  /** serverless.yml to read (default: the project's). */
  serverlessFile?: string;
  /** Folder handler and `${file(…)}` paths are relative to (default: the folder of `serverlessFile`). */
  root?: string;
  stage?: string;
  region?: string;
  params?: Record<string, string>;
  /** Use this DynamoDB endpoint instead of starting DynamoDB Local (tests share one). */
  dynamodbEndpoint?: string;
  /** Table name (default: serverless.yml's, with stage `local`: `fleetgate-local-provisioning`). */
  tableName?: string;
  /** Start the IoT emulator (default true). */
  iot?: boolean;
  /** Port of the MQTT device endpoint (mutual TLS; default a free one); `false` to not start it. */
  mqttPort?: number | false;
  /** Start the queue pollers (default true). */
  pollers?: boolean;
  /** Extra environment every function gets. */
  env?: Record<string, string>;
  /** Environment that wins over serverless.yml's (default: REPORT_DESTINATION → file://.fleetgate/reports). */
  overrides?: Record<string, string>;
  /** Where poller and async-invocation errors go (default: stderr). */
  onError?: (error: unknown) => void;
  /** Folder the local S3 keeps its buckets in (default: a new temporary folder). */
  s3Root?: string;
  /** Where the functions' output (logs, metrics) goes (default: this process's stdout / stderr). */
  handlerOutput?: (text: string) => void;
}

export interface StackEndpoints {
  /** DynamoDB through the local IAM gateway (DynamoDB Local behind it). */
  dynamodb: string;
  /** SQS through the local IAM gateway (the local SQS server behind it). */
  sqs: string;
  /** The local S3 with the buckets serverless.yml declares. */
  s3: string;
  iot?: string;
  iotData?: string;
  /** The MQTT device endpoint (`mqtts://127.0.0.1:<port>`, mutual TLS; CA: the emulator's, `GET /_emulator/ca`). */
  mqtt?: string;
  /** The HTTP API (`httpApi` routes: the installer API), with its JWT authorizers and local token issuer. */
  httpApi?: string;
}

/** One published message: the rules that ran and what their actions did. */
export interface PublishResult {
  topic: string;
  rules: RuleOutcome[];
}

/** What settle() saw when it gave up. */
export class SettleTimeoutError extends Error {
  override name = 'SettleTimeoutError';
}

export interface LocalStack {
  readonly model: StackModel;
  readonly endpoints: StackEndpoints;
  readonly region: string;
  readonly tableName: string;
  /** Queue name → URL. */
  readonly queues: Record<string, string>;
  /** Queue logical id → URL. */
  readonly queueUrls: Record<string, string>;
  readonly emulator?: IotEmulator;
  /** The IoT resources serverless.yml declares, as created in the emulator at start. */
  readonly iotResources: MaterializedIotResource[];
  /** Names of the declared device policy, claim policy and fleet-provisioning template. */
  readonly declared: DeclaredIotNames;
  /** The MQTT device endpoint in front of the emulator. */
  readonly mqtt?: MqttBroker;
  /** The HTTP API of the `httpApi` routes (started when serverless.yml declares any). */
  readonly httpApi?: LocalHttpApi;
  /** The standard SDK variables pointing at this stack (endpoints, region, dummy credentials). */
  readonly env: Record<string, string>;
  /** Process ids of child processes (DynamoDB Local's process group leader). */
  readonly pids: { dynamodb?: number };
  readonly functions: LocalFunctions;
  /** The local IAM: every call a function makes is authorized against its role (see docs/local-iam.md). */
  readonly iam: Authorizer;
  /** Where the local S3 keeps its buckets. */
  readonly s3Root: string;
  /** Invokes a function by its serverless.yml name and resolves with its result. */
  invoke(functionName: string, event: unknown): Promise<unknown>;
  /** Invokes and hands back what the invocation logged (`fleetgate invoke`). */
  invokeWithLogs(functionName: string, event: unknown): Promise<{ result: unknown; logs: string[] }>;
  /** Publishes through the rules engine (as IoT Core would) and returns what each matching rule did. */
  publish(topic: string, payload: Buffer | string | object, meta?: PublishMeta): Promise<PublishResult>;
  /** Invokes a scheduled function with an EventBridge "Scheduled Event" (its `input` when declared). */
  trigger(functionName: string, options?: { time?: string }): Promise<unknown>;
  /** What happened to a message the rules engine sent. */
  trace(messageId: string): MessageTrace | undefined;
  /** Waits until every consumed queue is empty, nothing is in flight and handlers are idle. */
  settle(timeoutMs?: number): Promise<void>;
  /** Messages currently in a queue (visible + in flight + delayed), by queue name. */
  depths(): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

/**
 * Starts the local stack. DynamoDB Local is the slow part (~3 s, unless `dynamodbEndpoint` is given);
 * everything else runs in this process.
 * @throws StackModelError when serverless.yml uses a construct (or a resource type) the local
 *   stack cannot resolve; IotResourceError when a declared IoT resource cannot be created.
 */
export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const serverlessFile = resolve(options.serverlessFile ?? `${projectRoot()}/serverless.yml`);
  const config = loadServerlessConfig(serverlessFile);
  const region = options.region ?? 'us-east-1';
  const draft = buildStackModel(config, modelOptions(options, region));
  // Resolved before anything starts: a resource that cannot be rendered fails the start at once.
  // `${file(…)}` paths are relative to the service folder (`root`: where the handlers are too).
  const iotSpecs =
    options.iot === false
      ? []
      : await declaredIotResources(config, {
          ...modelOptions(options, region),
          baseDir: options.root ?? dirname(serverlessFile),
        });
  const onError =
    options.onError ?? ((error: unknown) => process.stderr.write(`fleetgate local: ${String(error)}\n`));
  const cleanup: Array<() => Promise<void>> = [];
  const stopAll = async () => {
    for (const step of cleanup.reverse()) await step().catch(onError);
  };
  try {
    const [ddb, sqs, authorizationData] = await Promise.all([
      options.dynamodbEndpoint ? Promise.resolve(undefined) : startDynamoDbLocal(),
      startLocalSqs({ queues: draft.queues, region, accountId: draft.accountId }),
      serviceAuthorizationData(),
    ]);
    if (ddb) cleanup.push(() => ddb.stop());
    cleanup.push(() => sqs.stop());
    const dynamodbUpstream = options.dynamodbEndpoint ?? (ddb as DynamoDbLocal).endpoint;
    // The local IAM: functions sign with their own keys; the gateway and the emulator authorize.
    const iam = new Authorizer(authorizationData, {
      region,
      accountId: draft.accountId,
      stack: `${draft.service}-${draft.stage}`,
    });
    const ledger = new MessageLedger();
    const gateway = await startAwsGateway({
      onDeadLetter: ({ sourceMessageId, reason }) => ledger.markDeadLettered(sourceMessageId, reason),
      authorizer: iam,
      scope: { region, accountId: draft.accountId },
      dynamodb: dynamodbUpstream,
      sqs: sqs.endpoint,
      dynamodbAccessKeyId: LOCAL_CREDENTIALS.accessKeyId,
    });
    cleanup.push(() => gateway.stop());
    // Queue URLs name the gateway, so a function's SendMessage (the SDK sends to the URL's host) is authorized.
    const model = buildStackModel(config, {
      ...modelOptions(options, region),
      sqsEndpoint: gateway.endpoint,
    });
    for (const fn of model.functions) iam.registerFunction(fn.name, fn.deployedName, fn.role);
    // Topic rule actions act with their RoleArn role (IoT assumes it).
    const ruleRoleKeys = new Map<string, string>();
    for (const rule of model.rules) {
      for (const action of [...rule.actions, ...(rule.errorAction ? [rule.errorAction] : [])]) {
        const spec = action.type === 'sqs' && action.role ? model.roles[action.role] : undefined;
        if (spec && !ruleRoleKeys.has(spec.logicalId)) {
          ruleRoleKeys.set(spec.logicalId, iam.registerRole(`iot-rule:${spec.logicalId}`, spec));
        }
      }
    }
    const s3Root = options.s3Root ?? (await mkdtemp(join(tmpdir(), 'fleetgate-s3-')));
    // A folder made for this stack goes with it; one the caller named stays.
    if (!options.s3Root) cleanup.push(() => rm(s3Root, { recursive: true, force: true }));
    const s3: LocalS3 = await startLocalS3({ root: s3Root, buckets: model.buckets, authorizer: iam });
    cleanup.push(() => s3.stop());
    const publicQueueUrl = (raw: string) =>
      raw.startsWith(sqs.endpoint) ? `${gateway.endpoint}${raw.slice(sqs.endpoint.length)}` : raw;
    const dynamodbEndpoint = dynamodbUpstream;
    const ddbClient = new DynamoDBClient({
      endpoint: dynamodbEndpoint,
      region,
      credentials: LOCAL_CREDENTIALS,
    });
    cleanup.push(async () => ddbClient.destroy());
    await ensureTable(ddbClient, model.tableName);

    let rules: RulesEngine | undefined;
    let functions: LocalFunctions | undefined;
    const asyncInvocations = new Set<Promise<unknown>>();
    const emulator =
      options.iot === false
        ? undefined
        : await startIotEmulator({
            region,
            accountId: model.accountId,
            // A device's publish carries its session's principal and client id (principal(), clientid()).
            publish: async (topic, payload, meta) => {
              await rules?.publish(topic, payload, {
                ...(meta.principal ? { principal: meta.principal } : {}),
                ...(meta.clientId ? { clientId: meta.clientId } : {}),
              });
            },
            invokeHook: (arn, event) => {
              if (!functions) throw new Error('the local stack is not ready');
              const name = functionForArn(model.functions, arn);
              // AWS IoT invokes the hook only where the function's resource policy lets it.
              const denial = hookInvokeDenial(model, name, event.templateArn);
              if (denial) throw new Error(denial);
              return functions.invoke(name, event);
            },
            authorize: (accessKeyId, api, input) => {
              if (!iam.principal(accessKeyId)) return;
              try {
                iam.authorize(
                  accessKeyId,
                  iotCheck(api, input, { region, accountId: model.accountId }, authorizationData),
                );
              } catch (error) {
                if (error instanceof AccessDeniedError)
                  throw new IotError('AccessDeniedException', error.message);
                if (error instanceof UnmappedCallError) {
                  throw new IotError(
                    'NotEmulatedException',
                    `fleetgate local IAM cannot authorize ${api} (not emulated): ${error.message}`,
                  );
                }
                throw error;
              }
            },
          });
    if (emulator) cleanup.push(() => emulator.stop());
    // What CloudFormation's Custom::FleetgateAccount does at deploy (quarantine group with its deny
    // policy, registry event configurations), done here so the local account starts prepared.
    if (emulator) await prepareLocalAccount(emulator, model);
    // What CloudFormation creates at deploy: the IoT resources serverless.yml declares.
    const iotResources = emulator ? await materializeDeclaredIot(emulator, iotSpecs) : [];
    const mqtt =
      emulator && options.mqttPort !== false
        ? await startMqttBroker({
            emulator,
            ...(options.mqttPort ? { port: options.mqttPort } : {}),
            ...endpointLoggers(options),
          })
        : undefined;
    // Stopped before the emulator (cleanup runs in reverse).
    if (mqtt) cleanup.push(() => mqtt.stop());

    const endpoints: StackEndpoints = {
      dynamodb: gateway.endpoint,
      sqs: gateway.endpoint,
      s3: s3.endpoint,
      ...(emulator ? { iot: emulator.endpoint, iotData: emulator.endpoint } : {}),
      ...(mqtt ? { mqtt: mqtt.url } : {}),
    };
    // Each function runs with its own environment (local/lambda-runtime.ts), as on Lambda; the
    // developer's Powertools switches (POWERTOOLS_METRICS_DISABLED, POWERTOOLS_DEV, …) carry over
    // where serverless.yml does not set them, and the SDK's Node-version notice stays quiet.
    const developer = Object.fromEntries(
      Object.entries(process.env).filter(
        (entry): entry is [string, string] =>
          typeof entry[1] === 'string' &&
          (entry[0].startsWith('POWERTOOLS_') ||
            entry[0] === 'AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'),
      ),
    );
    const env: Record<string, string> = {
      ...developer,
      AWS_REGION: region,
      AWS_DEFAULT_REGION: region,
      AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
      AWS_ENDPOINT_URL_DYNAMODB: endpoints.dynamodb,
      AWS_ENDPOINT_URL_SQS: endpoints.sqs,
      AWS_ENDPOINT_URL_S3: endpoints.s3,
      ...(endpoints.iot ? { AWS_ENDPOINT_URL_IOT: endpoints.iot } : {}),
      ...(endpoints.iotData ? { AWS_ENDPOINT_URL_IOT_DATA_PLANE: endpoints.iotData } : {}),
      ...options.env,
    };
    const root = options.root ?? dirname(serverlessFile);
    const overrides = { ...options.overrides };
    const functionCredentials = (name: string) => ({
      accessKeyId: functionAccessKeyId(name),
      secretAccessKey: 'local',
      sessionToken: `local-session-${name}`,
    });
    functions = new LocalFunctions(model.functions, {
      root,
      baseEnv: env,
      overrides,
      credentials: functionCredentials,
      ...(options.handlerOutput ? { handlerOutput: options.handlerOutput } : {}),
    });
    const localFunctions = functions;
    const httpApi = model.functions.some((fn) => fn.httpApi.length > 0)
      ? await startHttpApi({
          functions: model.functions,
          authorizers: model.httpApiAuthorizers,
          region,
          accountId: model.accountId,
          invoke: (name, event) => localFunctions.invoke(name, event),
        })
      : undefined;
    if (httpApi) {
      cleanup.push(() => httpApi.stop());
      endpoints.httpApi = httpApi.url;
    }
    // The pre-provisioning hook answers AWS IoT within 5 s: its cold start happens now, not then.
    for (const template of model.provisioningTemplates) {
      if (template.preProvisioningHookFunction)
        await localFunctions.warm(template.preProvisioningHookFunction);
    }
    const queueByLogicalId = new Map(model.queues.map((queue) => [queue.logicalId, queue]));
    rules = new RulesEngine(model.rules, {
      accountId: model.accountId,
      hasFunction: (name) => model.functions.some((fn) => fn.name === name),
      sendMessage: async (queue, body, role) => {
        // A rule action sends as its role (RoleArn): IoT assumes it, so that role must allow the send.
        const key = role ? ruleRoleKeys.get(role) : undefined;
        if (role && !key)
          throw new Error(`the rule's RoleArn names ${role}, which is not a role of serverless.yml`);
        if (key) {
          const queueArn = model.queues.find((candidate) => candidate.logicalId === queue)?.arn ?? '';
          iam.authorize(key, { action: 'sqs:SendMessage', resources: [{ type: 'queue', arn: queueArn }] });
        }
        const out = await sqs.client.send(
          new SendMessageCommand({ QueueUrl: urlOf(sqs, queue), MessageBody: body }),
        );
        return out.MessageId ?? '';
      },
      invokeAsync: (name, event) => {
        const invocation = localFunctions.invoke(name, event).catch(onError);
        asyncInvocations.add(invocation);
        void invocation.finally(() => asyncInvocations.delete(invocation));
      },
    });
    const engine = rules;

    const pollers: QueuePoller[] = [];
    const consumed = new Set<string>();
    if (options.pollers !== false) {
      for (const fn of model.functions) {
        for (const mapping of fn.sqs) {
          if (!mapping.enabled) continue;
          const queue = queueByLogicalId.get(mapping.queue);
          if (!queue) continue;
          consumed.add(queue.logicalId);
          // Lambda polls a queue with the function's execution role (ReceiveMessage, DeleteMessage).
          const pollerClient = new SQSClient({
            endpoint: gateway.endpoint,
            region,
            credentials: functionCredentials(fn.name),
          });
          cleanup.push(async () => pollerClient.destroy());
          const poller = new QueuePoller({
            client: pollerClient,
            queue,
            queueUrl: publicQueueUrl(urlOf(sqs, queue.logicalId)),
            mapping,
            functionName: fn.name,
            region,
            ledger,
            onError,
            invoke: (event) => localFunctions.invoke(fn.name, event),
          });
          poller.start();
          pollers.push(poller);
        }
      }
    }
    cleanup.push(async () => {
      await Promise.all(pollers.map((poller) => poller.stop()));
      await Promise.allSettled([...asyncInvocations]);
    });

    const depths = async (logicalIds: Iterable<string>): Promise<Record<string, number>> => {
      const result: Record<string, number> = {};
      for (const id of logicalIds) {
        const queue = queueByLogicalId.get(id);
        if (!queue) continue;
        const out = await sqs.client.send(
          new GetQueueAttributesCommand({
            QueueUrl: urlOf(sqs, id),
            AttributeNames: [
              'ApproximateNumberOfMessages',
              'ApproximateNumberOfMessagesNotVisible',
              'ApproximateNumberOfMessagesDelayed',
            ],
          }),
        );
        const attributes = out.Attributes ?? {};
        result[queue.name] =
          Number(attributes.ApproximateNumberOfMessages ?? 0) +
          Number(attributes.ApproximateNumberOfMessagesNotVisible ?? 0) +
          Number(attributes.ApproximateNumberOfMessagesDelayed ?? 0);
      }
      return result;
    };

    let stopped: Promise<void> | undefined;
    return {
      model,
      endpoints,
      region,
      tableName: model.tableName,
      queues: Object.fromEntries(
        model.queues.map((queue) => [queue.name, publicQueueUrl(urlOf(sqs, queue.logicalId))]),
      ),
      queueUrls: Object.fromEntries([...sqs.urls].map(([id, url]) => [id, publicQueueUrl(url)])),
      ...(emulator ? { emulator } : {}),
      iotResources,
      declared: declaredIotNames(model),
      ...(mqtt ? { mqtt } : {}),
      ...(httpApi ? { httpApi } : {}),
      env,
      pids: ddb ? { dynamodb: ddb.pid } : {},
      functions: localFunctions,
      iam,
      s3Root,
      invoke: (name, event) => localFunctions.invoke(name, event),
      invokeWithLogs: async (name, event) => {
        const logs: string[] = [];
        const result = await localFunctions.invoke(name, event, { logs });
        return { result, logs };
      },
      publish: async (topic, payload, meta) => ({ topic, rules: await engine.publish(topic, payload, meta) }),
      trigger: (name, triggerOptions) => {
        const spec = localFunctions.spec(name);
        return localFunctions.invoke(name, scheduledEvent(model, spec, triggerOptions?.time));
      },
      trace: (messageId) => ledger.get(messageId),
      depths: () => depths(queueByLogicalId.keys()),
      settle: async (timeoutMs = 30_000) => {
        const deadline = Date.now() + timeoutMs;
        let quietChecks = 0;
        let last: Record<string, number> = {};
        while (Date.now() < deadline) {
          const idle =
            asyncInvocations.size === 0 &&
            localFunctions.busy === 0 &&
            pollers.every((poller) => poller.busy === 0);
          last = await depths(consumed);
          const empty = Object.values(last).every((depth) => depth === 0);
          quietChecks = idle && empty ? quietChecks + 1 : 0;
          // Two quiet looks in a row: a message between receive and invoke is not missed.
          if (quietChecks >= 2) return;
          await new Promise((resolveSleep) => setTimeout(resolveSleep, 50));
        }
        const busy = Object.entries(last)
          .filter(([, depth]) => depth > 0)
          .map(([name, depth]) => `${name}=${depth}`);
        throw new SettleTimeoutError(
          `the local stack did not settle within ${timeoutMs} ms (${busy.join(', ') || 'handlers still running'})`,
        );
      },
      stop: () => {
        stopped ??= stopAll();
        return stopped;
      },
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/**
 * Why AWS IoT could not invoke `functionName` as the pre-provisioning hook of `templateArn`, or
 * undefined when an `AWS::Lambda::Permission` lets `iot.amazonaws.com` invoke it for that template
 * (https://docs.aws.amazon.com/iot/latest/developerguide/pre-provisioning-hook.html: "grant AWS IoT
 * permission to invoke the Lambda function").
 */
export function hookInvokeDenial(
  model: StackModel,
  functionName: string,
  templateArn: string,
): string | undefined {
  const fn = model.functions.find((candidate) => candidate.name === functionName);
  const granted = model.lambdaPermissions.some(
    (permission) =>
      permission.functionName === functionName &&
      (permission.action === 'lambda:InvokeFunction' || permission.action === 'lambda:*') &&
      permission.principal === 'iot.amazonaws.com' &&
      (permission.sourceArn === undefined || arnMatches(permission.sourceArn, templateArn)) &&
      (permission.sourceAccount === undefined || permission.sourceAccount === model.accountId),
  );
  return granted
    ? undefined
    : `AccessDeniedException: iot.amazonaws.com is not authorized to perform lambda:InvokeFunction on ${fn?.arn ?? functionName} for ${templateArn} (no AWS::Lambda::Permission in serverless.yml grants it)`;
}

function arnMatches(pattern: string, arn: string): boolean {
  const regexp = new RegExp(
    `^${pattern
      .split('*')
      .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  );
  return regexp.test(arn);
}

let authorizationData: Promise<ServiceAuthorizationData> | undefined;

/** The Service Authorization Reference, loaded once per process. */
function serviceAuthorizationData(): Promise<ServiceAuthorizationData> {
  authorizationData ??= ServiceAuthorizationData.load();
  authorizationData.catch(() => {
    authorizationData = undefined;
  });
  return authorizationData;
}

function modelOptions(options: LocalStackOptions, region: string) {
  return {
    stage: options.stage ?? 'local',
    region,
    ...(options.params ? { params: options.params } : {}),
    ...(options.tableName ? { tableName: options.tableName } : {}),
  };
}

function urlOf(sqs: LocalSqs, logicalId: string): string {
  const url = sqs.urls.get(logicalId);
  if (!url) throw new Error(`no local queue for ${logicalId}`);
  return url;
}

/** The function a hook ARN (or name) designates: by ARN, deployed name, or serverless.yml name. */
export function functionForArn(functions: readonly FunctionSpec[], arn: string): string {
  const name = arn.startsWith('arn:') ? (arn.split(':')[6] ?? arn) : arn;
  const match = functions.find((fn) => fn.arn === arn || fn.deployedName === name || fn.name === name);
  if (!match) throw new Error(`no function in serverless.yml for ${arn}`);
  return match.name;
}

/**
 * An EventBridge scheduled event, as Lambda receives it from a `schedule` event source.
 * @see https://docs.aws.amazon.com/lambda/latest/dg/with-eventbridge-scheduler.html
 */
export function scheduledEvent(model: StackModel, fn: FunctionSpec, time?: string): unknown {
  const schedule = fn.schedules[0];
  if (schedule?.input !== undefined) return schedule.input;
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': 'Scheduled Event',
    source: 'aws.events',
    account: model.accountId,
    time: (time ? new Date(time) : new Date()).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    region: model.region,
    resources: [
      `arn:aws:events:${model.region}:${model.accountId}:rule/${schedule?.ruleName ?? `${fn.deployedName}-rule-1`}`,
    ],
    detail: {},
  };
}

async function materializeDeclaredIot(
  emulator: IotEmulator,
  specs: readonly IotResourceSpec[],
): Promise<MaterializedIotResource[]> {
  const iot = new IoTClient(emulator.clientConfig());
  try {
    return await materializeIotResources(iot, specs);
  } finally {
    iot.destroy();
  }
}

async function prepareLocalAccount(emulator: IotEmulator, model: StackModel): Promise<void> {
  if (model.accountPreparations.length === 0) return;
  const iot = new IoTClient(emulator.clientConfig());
  try {
    for (const preparation of model.accountPreparations) {
      await prepareAccount(iot, {
        thingGroupName: preparation.thingGroupName,
        policyName: preparation.policyName,
        policyDocument: quarantinePolicyDocument({ region: model.region, accountId: model.accountId }),
        eventTypes: (preparation.eventTypes.length
          ? preparation.eventTypes
          : FLEETGATE_EVENT_TYPES) as typeof FLEETGATE_EVENT_TYPES,
      });
    }
  } finally {
    iot.destroy();
  }
}

/**
 * What the MQTT endpoint refuses or ends as log lines where the functions' logs go (`handlerOutput`,
 * the stack's log, `fleetgate logs --function iot-endpoint`), shaped after AWS IoT's own log entries
 * (AWSIotLogsV2 `eventType: Connect|Disconnect`, the client id and principal): a refused connection,
 * a failed TLS handshake, and a connection the endpoint closed itself. A third-party client is told
 * nothing but a CONNACK code or a closed socket, so this is where its developer reads why. The
 * certificate is named by its id, never its PEM. Silenced with the functions' logs
 * (`POWERTOOLS_LOG_LEVEL=SILENT` in `overrides`).
 */
function endpointLoggers(
  options: LocalStackOptions,
): Pick<MqttBrokerOptions, 'onRefused' | 'onClosed' | 'onTlsError'> {
  if (options.overrides?.POWERTOOLS_LOG_LEVEL === 'SILENT') return {};
  const write = options.handlerOutput ?? ((text: string) => void process.stdout.write(text));
  const line = (entry: Record<string, unknown>) =>
    write(`${JSON.stringify({ source: STACK_LOG_SOURCES.iotEndpoint, ...entry })}\n`);
  return {
    onRefused: (refusal: ConnectionRefusal) =>
      line({
        level: 'WARN',
        message: 'MQTT connection refused',
        timestamp: refusal.at,
        eventType: 'Connect',
        status: 'Failure',
        clientId: refusal.clientId,
        ...(refusal.certificateId ? { principalId: refusal.certificateId } : {}),
        reason: refusal.reason,
        ...(refusal.protocolVersion !== undefined ? { protocolVersion: refusal.protocolVersion } : {}),
      }),
    onTlsError: (failure: TlsFailure) =>
      line({
        level: 'WARN',
        message: 'TLS handshake failed',
        timestamp: failure.at,
        eventType: 'Connect',
        status: 'Failure',
        ...(failure.certificateId ? { principalId: failure.certificateId } : {}),
        reason: failure.reason,
        ...(failure.code ? { code: failure.code } : {}),
        ...(failure.remoteAddress ? { sourceIp: failure.remoteAddress } : {}),
      }),
    onClosed: (closure: EndpointClosure) =>
      line({
        // A stopping stack closes every connection: expected, not a warning.
        level: closure.reason === 'SERVER_INITIATED_DISCONNECT' ? 'INFO' : 'WARN',
        message: 'MQTT connection closed by the endpoint',
        timestamp: closure.at,
        eventType: 'Disconnect',
        clientId: closure.clientId,
        principalId: closure.certificateId,
        reason: closure.reason,
        ...(closure.detail ? { detail: closure.detail } : {}),
        ...(closure.reasonCode !== undefined ? { reasonCode: closure.reasonCode } : {}),
        protocolVersion: closure.protocolVersion,
      }),
  };
}
