import { readdirSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAlive } from '../../local/stack-file';
import { type CliResult, fleetgate } from '../support/cli';
import { PROJECT_ROOT, serverlessCopy } from '../support/serverless-copy';

interface UpResult {
  pid: number;
  pids: { supervisor: number; dynamodb: number };
  endpoints: Record<string, string>;
  queues: Record<string, string>;
}

/** True while any process of the group led by `pid` is alive. */
function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

let dir: string;
let envA: Record<string, string>;
let envB: Record<string, string>;
let upA: UpResult;
let upB: UpResult;
const run = (args: string[], env = envA): Promise<CliResult> => fleetgate(args, env);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetgate-e2e-local-'));
  const serverlessFile = await serverlessCopy();
  const common = { FLEETGATE_SERVERLESS_FILE: serverlessFile, FLEETGATE_HANDLER_ROOT: PROJECT_ROOT };
  envA = { ...common, FLEETGATE_STACK_FILE: join(dir, 'a', 'stack.json') };
  envB = { ...common, FLEETGATE_STACK_FILE: join(dir, 'b', 'stack.json') };
  const [a, b] = await Promise.all([
    run(['local', 'up', '--json'], envA),
    run(['local', 'up', '--json'], envB),
  ]);
  expect([a.code, b.code], `${a.stderr}\n${b.stderr}`).toEqual([0, 0]);
  upA = a.json<UpResult>();
  upB = b.json<UpResult>();
});
afterAll(async () => {
  await Promise.all([run(['local', 'down'], envA), run(['local', 'down'], envB)]);
});

describe('fleetgate local', () => {
  it('runs two stacks side by side, each found through its own stack file', async () => {
    expect(upA.pid).not.toBe(upB.pid);
    expect(upA.endpoints.sqs).not.toBe(upB.endpoints.sqs);
    const status = await run(['local', 'status', '--json']);
    expect(status.code).toBe(0);
    expect(status.json()).toMatchObject({
      running: true,
      pid: upA.pid,
      endpoints: { dynamodb: expect.any(String), sqs: upA.endpoints.sqs, iot: expect.any(String) },
      queues: { 'fleetgate-local-registration': expect.stringContaining('/fleetgate-local-registration') },
      depths: { 'fleetgate-local-registration': 0 },
    });
    const again = await run(['local', 'up', '--json']);
    expect(again.json()).toMatchObject({ alreadyRunning: true, pid: upA.pid });
  });

  it('invokes a function by its serverless.yml name and prints its result', async () => {
    const event = join(dir, 'event.json');
    // An SQS-fed function: invoke delivers the message as its queue would, after the rule that feeds it.
    await writeFile(
      event,
      JSON.stringify({ topic: '$aws/events/certificates/registered/0123abcd', payload: { hello: 'world' } }),
    );
    const result = await run(['invoke', 'recordRegistration', '--event', event, '--json']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.json()).toMatchObject({
      function: 'recordRegistration',
      target: 'local',
      result: { ok: true, functionName: 'fleetgate-local-recordRegistration', env: { STAGE: 'local' } },
    });
    const crashed = await run(['invoke', 'crashHard', '--event', event, '--json']);
    expect(crashed.code).toBe(1);
    expect(crashed.stderr.trim().split('\n')).toHaveLength(1);
    expect(crashed.json()).toMatchObject({
      ok: false,
      error: { code: 'FAILED', message: expect.stringContaining('fixture crash') },
      result: { errorType: 'Error' },
    });
  });

  it('exits 2 on usage errors, with a reason on stderr and a USAGE document', async () => {
    const cases: Array<[string[], string]> = [
      [
        ['invoke', 'noSuchFunction', '--event', 'events/iot/presence-connected.json', '--json'],
        'no function',
      ],
      [['invoke', 'recordRegistration', '--json'], "required option '--event"],
      [['invoke', 'recordRegistration', '--event', '/nonexistent.json', '--json'], 'no such file'],
      [['invoke', 'recordRegistration', '--event', 'package.json', '--target', 'gcp', '--json'], '--target'],
      [['replay', '/nonexistent', '--json'], 'no such file'],
      [['replay', 'events/hook/allowed.json', '--json'], 'is a pre-provisioning hook input'],
      [['replay', 'events/iot', '--times', '0', '--json'], '--times'],
      [['devices', 'list', '--state', 'BOGUS', '--json'], '--state'],
      [['replay', 'events/iot', 'events/hook', '--json'], 'too many arguments'],
    ];
    const results = await Promise.all(cases.map(([args]) => run(args)));
    results.forEach((result, index) => {
      const [args, message] = cases[index] ?? [[], ''];
      expect({ args, code: result.code, reason: result.stderr.includes(message) }).toEqual({
        args,
        code: 2,
        reason: true,
      });
      expect(result.json()).toMatchObject({ ok: false, error: { code: 'USAGE' } });
    });
  });

  it('replays recorded events through rule → queue → function, duplicated and shuffled', async () => {
    const samples = readdirSync(join(PROJECT_ROOT, 'events', 'iot')).length;
    const replay = await run(['replay', 'events/iot', '--times', '2', '--shuffle', '--seed', '7', '--json']);
    expect(replay.code, replay.stderr).toBe(0);
    const document = replay.json<{
      summary: Record<string, number>;
      outcomes: Array<{
        topic: string;
        rules: Array<{ rule: string; actions: Array<Record<string, unknown>> }>;
      }>;
    }>();
    expect(document).toMatchObject({
      events: samples,
      times: 2,
      shuffled: true,
      seed: 7,
      settled: true,
      target: 'stack',
    });
    expect(document.summary).toMatchObject({
      deliveries: samples * 2,
      deadLettered: 0,
      actionErrors: 0,
      pending: 0,
    });
    const jitr = document.outcomes.find((outcome) =>
      outcome.topic.startsWith('$aws/events/certificates/registered/'),
    );
    expect(jitr?.rules).toEqual([
      {
        rule: 'RegisterCertificateRule',
        actions: [
          {
            type: 'sqs',
            queue: 'RegistrationQueue',
            ok: true,
            messageId: expect.any(String),
            function: 'recordRegistration',
            status: 'succeeded',
            receives: 1,
          },
        ],
      },
    ]);
    const again = await run(['replay', 'events/iot', '--times', '2', '--shuffle', '--seed', '7', '--json']);
    const order = (text: CliResult) => text.json<typeof document>().outcomes.map((outcome) => outcome.topic);
    expect(order(again)).toEqual(order(replay));
  });

  it('exits 1 and says which deliveries ended in a DLQ', async () => {
    const event = join(dir, 'poison.json');
    await writeFile(
      event,
      JSON.stringify({
        topic: '$aws/events/presence/connected/poison-1',
        payload: { clientId: 'poison-1', eventType: 'connected', fail: true },
      }),
    );
    const result = await run(['replay', event, '--json']);
    expect(result.code, result.stderr).toBe(1);
    expect(result.json()).toMatchObject({
      ok: false,
      error: { code: 'FAILED', message: expect.stringContaining('dead-lettered') },
      result: {
        summary: { deadLettered: 1 },
        outcomes: [
          {
            rules: [
              {
                rule: 'PresenceRule',
                actions: [
                  {
                    queue: 'LifecycleQueue',
                    function: 'lifecycle',
                    status: 'dead-lettered',
                    deadLetterQueue: 'LifecycleDLQ',
                  },
                ],
              },
            ],
          },
        ],
      },
    });
  });

  it('reads devices from the running stack', async () => {
    const list = await run(['devices', 'list', '--json']);
    expect(list.code, list.stderr).toBe(0);
    expect(list.json()).toMatchObject({ devices: [], count: 0, truncated: false });
    const get = await run(['devices', 'get', 'SN-NOPE-1', '--json']);
    expect(get.code).toBe(1);
    expect(get.json()).toMatchObject({
      ok: false,
      error: { message: expect.stringContaining('no device SN-NOPE-1') },
    });
    const history = await run(['devices', 'history', 'SN-NOPE-1', '--json']);
    expect(history.code).toBe(1);
  });

  it('local down leaves no process behind, also after a handler crashed', async () => {
    const down = await run(['local', 'down', '--json']);
    expect(down.code, down.stderr).toBe(0);
    expect(down.json()).toMatchObject({ stopped: true, running: false, pids: upA.pids });
    expect([isAlive(upA.pids.supervisor), groupAlive(upA.pids.dynamodb)]).toEqual([false, false]);
    // The other stack is untouched until its own down.
    expect(isAlive(upB.pid)).toBe(true);
    const downB = await run(['local', 'down', '--json'], envB);
    expect(downB.code).toBe(0);
    expect([isAlive(upB.pids.supervisor), groupAlive(upB.pids.dynamodb)]).toEqual([false, false]);
    const status = await run(['local', 'status', '--json']);
    expect(status.json()).toEqual({ running: false });
    const downAgain = await run(['local', 'down', '--json']);
    expect(downAgain.json()).toEqual({ stopped: false, running: false });
  });
});

describe('fleetgate dev --exit', () => {
  it('starts the stack, prints its endpoints and stops', async () => {
    const result = await fleetgate(['dev', '--exit', '--no-demo', '--json'], {
      FLEETGATE_STACK_FILE: join(dir, 'dev', 'stack.json'),
    });
    expect(result.code, result.stderr).toBe(0);
    expect(result.json()).toMatchObject({
      running: true,
      tableName: 'fleetgate-local-provisioning',
      endpoints: { dynamodb: expect.any(String), sqs: expect.any(String), iot: expect.any(String) },
      queues: { 'fleetgate-local-rule-errors': expect.any(String) },
    });
    const { pids } = result.json<UpResult>();
    expect(groupAlive(pids.dynamodb)).toBe(false);
  });
});
