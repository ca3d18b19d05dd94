/**
 * Messages fleetgate sends to devices through the IoT data plane (Publish, QoS 1): the answers to a
 * rotation request and the sweep's rotation notice. Endpoint from `AWS_ENDPOINT_URL_IOT_DATA_PLANE`
 * (locally the emulator, which serves data-plane Publish).
 * @see https://docs.aws.amazon.com/iot/latest/apireference/API_iotdata_Publish.html
 */
import {
  IoTDataPlaneClient,
  type IoTDataPlaneClientConfig,
  PublishCommand,
} from '@aws-sdk/client-iot-data-plane';
import { isTransientAwsError, PermanentError, TransientError } from '../errors';
import { awsName } from './iot-registry';

/** A data-plane client with fleetgate's retry behaviour. */
export function iotDataClient(config: IoTDataPlaneClientConfig = {}): IoTDataPlaneClient {
  return new IoTDataPlaneClient({ maxAttempts: 5, retryMode: 'adaptive', ...config });
}

/** The rotation topics of one thing. */
export const rotationTopics = {
  request: (thingName: string) => `fleetgate/${thingName}/rotate/request`,
  accepted: (thingName: string) => `fleetgate/${thingName}/rotate/accepted`,
  rejected: (thingName: string) => `fleetgate/${thingName}/rotate/rejected`,
  required: (thingName: string) => `fleetgate/${thingName}/rotate/required`,
};

/** Payload of `fleetgate/<thingName>/rotate/accepted`. */
export interface RotationAccepted {
  certificateId: string;
  certificatePem: string;
  /** Connect with the new certificate before this instant, or the rotation is aborted. */
  rotationDeadline: string;
}

/** Payload of `fleetgate/<thingName>/rotate/rejected`. */
export interface RotationRejected {
  reason: string;
  message: string;
}

/** Payload of `fleetgate/<thingName>/rotate/required`. */
export interface RotationRequired {
  reason: 'EXPIRING' | 'TOO_OLD';
  certificateId: string;
  notAfter: string;
  daysLeft: number;
}

/** Sends JSON messages to devices. */
export interface DeviceMessenger {
  publish(topic: string, message: object): Promise<void>;
}

export class IotDataMessenger implements DeviceMessenger {
  constructor(private readonly client: IoTDataPlaneClient) {}

  /** Publishes `message` as JSON with QoS 1. */
  async publish(topic: string, message: object): Promise<void> {
    try {
      await this.client.send(
        new PublishCommand({ topic, qos: 1, payload: Buffer.from(JSON.stringify(message)) }),
      );
    } catch (error) {
      if (isTransientAwsError(error)) {
        throw new TransientError(`Publish failed: ${awsName(error)}`, { cause: error });
      }
      throw new PermanentError(`Publish failed: ${awsName(error)}`, { cause: error });
    }
  }
}
