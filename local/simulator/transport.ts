/**
 * How simulated devices reach the IoT emulator: `http` calls its device-side routes directly
 * (`/_emulator/connect`, `/_emulator/fleet/...`), `mqtt` opens a real MQTT connection over mutual TLS per
 * device to the local device endpoint and speaks the Fleet Provisioning MQTT API, as firmware does.
 */
import { IoTClient } from '@aws-sdk/client-iot';
import type { MqttClient } from 'mqtt';
import type {
  ConnectInput,
  ConnectOutcome,
  ConnectRefusal,
  FleetCertificateResponse,
  FleetRejection,
  RegisterThingAccepted,
  RegisterThingInput,
} from '../iot-emulator/index';
import { connectDevice, type DropReason, fleetRequest, fleetTopics } from '../mqtt/client';
import type { StackHandle } from '../stack-control';
import { DeviceClient, type EmulatorMessage, type EmulatorState } from './device-client';

export type TransportKind = 'http' | 'mqtt';

/** A device connecting: its certificate, and the private key a TLS handshake needs. */
export interface TransportConnectInput extends ConnectInput {
  privateKeyPem: string;
}

/** What the simulator does as devices, whatever carries it. */
export interface DeviceTransport {
  readonly kind: TransportKind;
  connect(input: TransportConnectInput): Promise<ConnectOutcome>;
  disconnect(clientId: string): Promise<{ disconnected: boolean }>;
  /** CreateCertificateFromCsr on the connection of `clientId` (a claim connection). */
  createCertificateFromCsr(csr: string, clientId: string): Promise<FleetCertificateResponse | FleetRejection>;
  /** RegisterThing on the connection of `input.clientId`. */
  registerThing(input: RegisterThingInput): Promise<RegisterThingAccepted | FleetRejection>;
  state(): Promise<EmulatorState>;
  published(topicPrefix: string): Promise<EmulatorMessage[]>;
  /** Connections opened so far (MQTT). */
  readonly connections: number;
  /** Closes what is still open. */
  close(): Promise<void>;
}

/** Thrown when the stack has no MQTT endpoint. */
export class TransportUnavailableError extends Error {
  override name = 'TransportUnavailableError';
}

/** The transport of `kind` for a stack. */
export async function createTransport(kind: TransportKind, handle: StackHandle): Promise<DeviceTransport> {
  const iotEndpoint = handle.endpoints.iot;
  if (!iotEndpoint) throw new TransportUnavailableError('the local stack runs without the IoT emulator');
  const http = new DeviceClient(iotEndpoint);
  if (kind === 'http') return httpTransport(http);
  const url = handle.endpoints.mqtt;
  if (!url) throw new TransportUnavailableError('the local stack has no MQTT endpoint (endpoints.mqtt)');
  const ca = await fetch(`${iotEndpoint}/_emulator/ca`);
  const { certificatePem: caPem } = (await ca.json()) as { certificatePem: string };
  return new MqttTransport(http, url, caPem, handle.region, iotEndpoint);
}

function httpTransport(http: DeviceClient): DeviceTransport {
  return {
    kind: 'http',
    // The emulator's routes need no private key; it is not sent.
    connect: ({ certificatePem, clientId, ipAddress }) =>
      http.connect({ certificatePem, clientId, ...(ipAddress ? { ipAddress } : {}) }),
    disconnect: (clientId) => http.disconnect(clientId),
    createCertificateFromCsr: (csr) => http.createCertificateFromCsr(csr),
    registerThing: (input) => http.registerThing(input),
    state: () => http.state(),
    published: (prefix) => http.published(prefix),
    connections: 0,
    close: async () => undefined,
  };
}

/** The gateway's refusal names for what a device can find out after a drop. */
const REFUSALS: Record<DropReason, ConnectRefusal | 'CONNECT_NOT_AUTHORIZED' | 'CONNECTION_FAILED'> = {
  CERTIFICATE_EXPIRED: 'CERTIFICATE_EXPIRED',
  UNKNOWN_CERTIFICATE: 'UNKNOWN_CERTIFICATE',
  PENDING_ACTIVATION: 'PENDING_ACTIVATION',
  CERTIFICATE_INACTIVE: 'CERTIFICATE_INACTIVE',
  CERTIFICATE_REVOKED: 'CERTIFICATE_REVOKED',
  CERTIFICATE_PENDING_TRANSFER: 'CERTIFICATE_PENDING_TRANSFER',
  // JITP activates the certificate on the connection it refuses: the device reconnects.
  ACTIVATED_ON_CONNECT: 'JITP_PROVISIONED',
  CONNECT_NOT_AUTHORIZED: 'CONNECT_NOT_AUTHORIZED',
  CONNECTION_FAILED: 'CONNECTION_FAILED',
};

class MqttTransport implements DeviceTransport {
  readonly kind = 'mqtt' as const;
  private readonly clients = new Map<string, MqttClient>();
  private readonly iot: IoTClient;
  private opened = 0;

  constructor(
    private readonly http: DeviceClient,
    private readonly url: string,
    private readonly caPem: string,
    region: string,
    iotEndpoint: string,
  ) {
    this.iot = new IoTClient({
      endpoint: iotEndpoint,
      region,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
  }

  get connections(): number {
    return this.opened;
  }

  async connect(input: TransportConnectInput): Promise<ConnectOutcome> {
    const result = await connectDevice({
      url: this.url,
      caPem: this.caPem,
      certificatePem: input.certificatePem,
      privateKeyPem: input.privateKeyPem,
      clientId: input.clientId,
      iot: this.iot,
    });
    this.opened += 1;
    if (!result.connected) {
      return {
        accepted: false,
        reason: REFUSALS[result.reason] as ConnectRefusal,
        message: result.detail,
        certificateId: result.certificateId,
      };
    }
    const { client } = result;
    // A clone taking the client id closes this connection (DUPLICATE_CLIENTID): forget it then.
    client.once('close', () => {
      if (this.clients.get(input.clientId) === client) this.clients.delete(input.clientId);
    });
    this.clients.get(input.clientId)?.end(true);
    this.clients.set(input.clientId, client);
    return {
      accepted: true,
      clientId: input.clientId,
      certificateId: result.certificateId,
      // The device does not learn its session's identity over MQTT.
      sessionIdentifier: '',
      versionNumber: -1,
    };
  }

  async disconnect(clientId: string): Promise<{ disconnected: boolean }> {
    const client = this.clients.get(clientId);
    if (!client) return { disconnected: false };
    this.clients.delete(clientId);
    await client.endAsync();
    return { disconnected: true };
  }

  async createCertificateFromCsr(
    csr: string,
    clientId: string,
  ): Promise<FleetCertificateResponse | FleetRejection> {
    const reply = await fleetRequest(
      this.connection(clientId),
      fleetTopics.createCertificateFromCsr('json'),
      'json',
      { certificateSigningRequest: csr },
    );
    return reply.body as unknown as FleetCertificateResponse | FleetRejection;
  }

  async registerThing(input: RegisterThingInput): Promise<RegisterThingAccepted | FleetRejection> {
    const reply = await fleetRequest(
      this.connection(input.clientId ?? ''),
      fleetTopics.registerThing(input.templateName, 'json'),
      'json',
      { certificateOwnershipToken: input.certificateOwnershipToken, parameters: input.parameters ?? {} },
    );
    return reply.body as unknown as RegisterThingAccepted | FleetRejection;
  }

  state(): Promise<EmulatorState> {
    return this.http.state();
  }

  published(topicPrefix: string): Promise<EmulatorMessage[]> {
    return this.http.published(topicPrefix);
  }

  async close(): Promise<void> {
    const open = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(open.map((client) => client.endAsync().catch(() => undefined)));
    this.iot.destroy();
  }

  private connection(clientId: string): MqttClient {
    const client = this.clients.get(clientId);
    if (!client) throw new Error(`${clientId} is not connected`);
    return client;
  }
}
