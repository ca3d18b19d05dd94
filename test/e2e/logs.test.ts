/**
 * `fleetgate logs` across two runs of a local stack on one log, as a new user reads it: the
 * endpoint's own lines (`iot-endpoint`: a refused MQTT connection) can be selected like a function's,
 * `--all` marks where each run starts, and the stack's own start-up output is not an entry.
 */
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fleetgate } from '../support/cli';
import { closed, connect } from '../support/mqtt';

interface LogsJson {
  since?: string;
  lines: Array<Record<string, unknown>>;
  runs?: Array<{ mode: string; at: string }>;
}

let env: Record<string, string>;

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'fleetgate-e2e-logs-'));
  env = { FLEETGATE_STACK_FILE: join(dir, 'stack.json'), FLEETGATE_DEVICES_DIR: join(dir, 'devices') };
  // Run 1: a claim certificate; then run 2 (its IoT starts empty), where that certificate is refused.
  expect((await fleetgate(['local', 'up', '--json'], env)).code).toBe(0);
  expect((await fleetgate(['device', 'claim', '--json'], env)).code).toBe(0);
  expect((await fleetgate(['local', 'down'], env)).code).toBe(0);
  expect((await fleetgate(['local', 'up', '--json'], env)).code).toBe(0);
  expect((await fleetgate(['device', 'connect', 'claim', '--json'], env)).code).toBe(1);
});
afterAll(async () => {
  await fleetgate(['local', 'down'], env);
});

/** The refusal is logged as the endpoint refuses; the log may lag the command by a moment. */
async function endpointLines(): Promise<LogsJson> {
  for (let attempt = 0; ; attempt += 1) {
    const logs = await fleetgate(['logs', '--function', 'iot-endpoint', '--json'], env);
    expect(logs.code, logs.stderr).toBe(0);
    const parsed = logs.json<LogsJson>();
    if (parsed.lines.length > 0 || attempt >= 20) return parsed;
    await sleep(250);
  }
}

describe('fleetgate logs', () => {
  it('--function takes the endpoint’s own source (iot-endpoint); an unknown name lists the valid ones', async () => {
    const refusals = await endpointLines();
    expect(refusals.lines).toEqual([
      expect.objectContaining({
        source: 'iot-endpoint',
        message: 'MQTT connection refused',
        clientId: 'claim',
      }),
    ]);
    const human = await fleetgate(['logs', '--function', 'iot-endpoint'], env);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/WARN\s+iot-endpoint {2}MQTT connection refused/);

    const unknown = await fleetgate(['logs', '--function', 'nope'], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('preProvisionHook');
    expect(unknown.stderr).toContain('iot-endpoint');
    const help = await fleetgate(['logs', '--help'], env);
    expect(help.stdout).toContain('iot-endpoint');
  });

  it('--all prints a header per stack run, and --json gives each run and each line its run', async () => {
    const human = await fleetgate(['logs', '--all'], env);
    expect(human.code, human.stderr).toBe(0);
    const headers = human.stdout.match(/^— local up stack started \S+ —$/gm) ?? [];
    expect(headers).toHaveLength(2);
    // The refusal is in the second run: after the second header.
    const second = human.stdout.lastIndexOf('— local up stack started');
    expect(human.stdout.indexOf('MQTT connection refused')).toBeGreaterThan(second);

    const json = (await fleetgate(['logs', '--all', '--json'], env)).json<LogsJson>();
    expect(json.runs).toEqual([
      expect.objectContaining({ mode: 'local up', at: expect.any(String) }),
      expect.objectContaining({ mode: 'local up', at: expect.any(String) }),
    ]);
    const runs = json.runs ?? [];
    const refused = json.lines.find((line) => line.message === 'MQTT connection refused');
    // The existing fields are kept; the run is one more.
    expect(refused).toMatchObject({ source: 'iot-endpoint', clientId: 'claim', run: runs[1]?.at });
  });

  it('the stack’s own start-up output is not an entry', async () => {
    const human = await fleetgate(['logs', '--all'], env);
    expect(human.stdout).not.toMatch(/^serving \(pid \d+\)$/m);
    const json = (await fleetgate(['logs', '--all', '--json'], env)).json<LogsJson>();
    expect(json.lines.filter((line) => String(line.text ?? '').startsWith('serving (pid'))).toEqual([]);
    const latest = (await fleetgate(['logs', '--json'], env)).json<LogsJson>();
    expect(latest.lines.filter((line) => 'text' in line)).toEqual([]);
  });

  it('the endpoint’s own closes and failed TLS handshakes are lines of iot-endpoint: client id, certificate id, reason', async () => {
    // Prepare: a claim of this run, two connections with one client id, then a publish its policy denies.
    const claim = await fleetgate(['device', 'claim', 'second', '--json'], env);
    expect(claim.code, claim.stderr).toBe(0);
    const files = claim.json<{
      certificateId: string;
      certificateFile: string;
      privateKeyFile: string;
      caFile: string;
      endpoint: string;
      host: string;
      port: number;
    }>();
    const broker = { url: files.endpoint, caPem: await readFile(files.caFile, 'utf8') };
    const identity = {
      certificatePem: await readFile(files.certificateFile, 'utf8'),
      privateKeyPem: await readFile(files.privateKeyFile, 'utf8'),
    };

    // Act
    const first = await connect(broker, identity, 'claim.LOG-1');
    const firstClosed = closed(first);
    const second = await connect(broker, identity, 'claim.LOG-1');
    await firstClosed;
    const secondClosed = closed(second);
    second.publish('not/allowed', 'x', { qos: 0 });
    await secondClosed;
    // A client that offers only TLS 1.1: the endpoint (TLS 1.2+) fails the handshake.
    const tlsError = await new Promise<string>((resolve) => {
      const socket = tlsConnect({
        host: files.host,
        port: files.port,
        ca: broker.caPem,
        minVersion: 'TLSv1',
        maxVersion: 'TLSv1.1',
      });
      socket.once('secureConnect', () => resolve('connected'));
      socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    });
    first.end(true);
    second.end(true);

    // Assess
    expect(tlsError).not.toBe('connected');
    const expected = [
      expect.objectContaining({
        source: 'iot-endpoint',
        message: 'MQTT connection closed by the endpoint',
        eventType: 'Disconnect',
        clientId: 'claim.LOG-1',
        principalId: files.certificateId,
        reason: 'DUPLICATE_CLIENTID',
      }),
      expect.objectContaining({
        source: 'iot-endpoint',
        message: 'MQTT connection closed by the endpoint',
        clientId: 'claim.LOG-1',
        principalId: files.certificateId,
        reason: 'AUTH_ERROR',
        detail: 'the policies do not allow iot:Publish on not/allowed',
      }),
      expect.objectContaining({
        source: 'iot-endpoint',
        level: 'WARN',
        message: 'TLS handshake failed',
        eventType: 'Connect',
        status: 'Failure',
        reason: 'unsupported protocol',
      }),
    ];
    let lines: Array<Record<string, unknown>> = [];
    // The endpoint logs as it closes; the log may lag the client by a moment.
    for (let attempt = 0; attempt < 20; attempt += 1) {
      lines = (await endpointLines()).lines;
      if (lines.length >= 4) break;
      await sleep(250);
    }
    expect(lines).toEqual([expect.objectContaining({ message: 'MQTT connection refused' }), ...expected]);
    expect(JSON.stringify(lines)).not.toContain('BEGIN');
  });
});
