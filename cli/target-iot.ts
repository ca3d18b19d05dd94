/**
 * The IoT control plane a command acts on (its own module, so commands that do not need the IoT
 * client do not load it).
 */
import { IoTClient } from '@aws-sdk/client-iot';
import { readStackFile } from '../local/stack-file';
import { checkTarget, LOCAL_CREDENTIALS } from './target';

/** The IoT control plane a command acts on: AWS, the running stack's emulator, or `AWS_ENDPOINT_URL_IOT`. */
export interface IotTarget {
  kind: 'stack' | 'env' | 'aws';
  iot: IoTClient;
  close(): void;
}

/** The IoT target, or undefined when none is reachable (no stack, no endpoint, not `--target aws`). */
export function resolveIotTarget(options: { target?: string }): IotTarget | undefined {
  const target = checkTarget(options.target);
  const wrap = (kind: IotTarget['kind'], iot: IoTClient): IotTarget => ({
    kind,
    iot,
    close: () => iot.destroy(),
  });
  if (target === 'aws') return wrap('aws', new IoTClient({}));
  const stack = readStackFile();
  if (stack?.endpoints.iot) {
    return wrap(
      'stack',
      new IoTClient({ endpoint: stack.endpoints.iot, region: stack.region, credentials: LOCAL_CREDENTIALS }),
    );
  }
  const endpoint = process.env.AWS_ENDPOINT_URL_IOT;
  if (endpoint) {
    return wrap(
      'env',
      new IoTClient({
        endpoint,
        region: process.env.AWS_REGION ?? 'us-east-1',
        credentials: LOCAL_CREDENTIALS,
      }),
    );
  }
  return undefined;
}
