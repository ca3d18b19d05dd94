/**
 * The device side of the IoT emulator over its introspection routes (`/_emulator/...`), so a simulator
 * drives an in-process stack and a background one (`fleetgate local up`) through the same code.
 * @see local/iot-emulator/README.md
 */
import { request as httpRequest } from 'node:http';
import type {
  ConnectInput,
  ConnectOutcome,
  FleetCertificateResponse,
  FleetRejection,
  RegisterThingAccepted,
  RegisterThingInput,
} from '../iot-emulator/index';

/** One message the emulator published (`GET /_emulator/published`). */
export interface EmulatorMessage {
  topic: string;
  payload: unknown;
  encoding: 'json' | 'base64';
}

/** The parts of `GET /_emulator/state` the simulator reads. */
export interface EmulatorState {
  accountId: string;
  certificates: Array<{ certificateId: string; status: string; things: string[] }>;
  things: Array<{ thingName: string; attributes: Record<string, string>; principals: string[] }>;
}

/** Thrown when an emulator route answers with an error status. */
export class EmulatorRouteError extends Error {
  override name = 'EmulatorRouteError';
}

export class DeviceClient {
  constructor(private readonly endpoint: string) {}

  connect(input: ConnectInput): Promise<ConnectOutcome> {
    return this.call('POST', '/_emulator/connect', input);
  }

  disconnect(clientId: string): Promise<{ disconnected: boolean }> {
    return this.call('POST', '/_emulator/disconnect', { clientId });
  }

  createCertificateFromCsr(csr: string): Promise<FleetCertificateResponse | FleetRejection> {
    return this.call('POST', '/_emulator/fleet/create-certificate-from-csr', { csr });
  }

  registerThing(input: RegisterThingInput): Promise<RegisterThingAccepted | FleetRejection> {
    return this.call('POST', '/_emulator/fleet/register-thing', input);
  }

  state(): Promise<EmulatorState> {
    return this.call('GET', '/_emulator/state');
  }

  async published(topicPrefix: string): Promise<EmulatorMessage[]> {
    const document = await this.call<{ messages: EmulatorMessage[] }>(
      'GET',
      `/_emulator/published?topicPrefix=${encodeURIComponent(topicPrefix)}`,
    );
    return document.messages;
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const { status, text } = await requestOnNewConnection(method, `${this.endpoint}${path}`, body).catch(
      (error: unknown) => {
        throw new EmulatorRouteError(`${method} ${path}: ${describeTransportError(error)}`, { cause: error });
      },
    );
    if (status < 200 || status > 299) throw new EmulatorRouteError(`${method} ${path}: ${status} ${text}`);
    return JSON.parse(text) as T;
  }
}

/**
 * One request on a connection of its own (`agent: false`, closed after the answer), as each device
 * has its own connection to IoT Core. A pooled keep-alive connection would be shared by devices, and
 * under a burst one device's request can land on a socket the server is closing at that moment
 * (`ECONNRESET`, the keep-alive race), a failure no real device would see.
 */
function requestOnNewConnection(
  method: string,
  url: string,
  body: unknown,
): Promise<{ status: number; text: string }> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, {
      method,
      agent: false,
      headers: {
        'content-type': 'application/json',
        ...(payload === undefined ? {} : { 'content-length': Buffer.byteLength(payload) }),
      },
    });
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
      );
    });
    req.end(payload);
  });
}

/** The network error's code and message (`ECONNREFUSED connect ECONNREFUSED 127.0.0.1:4000`), not just "fetch failed". */
function describeTransportError(error: unknown): string {
  const { code, message } = error as { code?: string; message?: string };
  return [code, message ?? String(error)].filter(Boolean).join(' ');
}
