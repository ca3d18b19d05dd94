/**
 * The device side of the IoT emulator over its introspection routes (`/_emulator/...`), so a simulator
 * drives an in-process stack and a background one (`fleetgate local up`) through the same code.
 * @see local/iot-emulator/README.md
 */
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
    const response = await fetch(`${this.endpoint}${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    if (!response.ok) throw new EmulatorRouteError(`${method} ${path}: ${response.status} ${text}`);
    return JSON.parse(text) as T;
  }
}
