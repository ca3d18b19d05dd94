/**
 * The options of a local stack this command starts, from the environment: its own module, so a
 * command that only reads the stack file (`fleetgate local status`) does not load the store and the
 * DynamoDB client with cli/target.ts.
 */
import { dirname, join } from 'node:path';
import type { LocalStackOptions } from '../local/stack';
import { stackFilePath } from '../local/stack-file';

/**
 * serverless.yml the local stack reads (`FLEETGATE_SERVERLESS_FILE`, default the project's), and the
 * MQTT endpoint's port (`FLEETGATE_MQTT_PORT`, default a free one).
 */
export function localStackOptions(): LocalStackOptions {
  const serverlessFile = process.env.FLEETGATE_SERVERLESS_FILE;
  const root = process.env.FLEETGATE_HANDLER_ROOT;
  // A fixed port for the MQTT device endpoint (default: a free one), handy for hand-typed clients.
  const mqttPort = Number(process.env.FLEETGATE_MQTT_PORT);
  return {
    ...(serverlessFile ? { serverlessFile } : {}),
    ...(root ? { root } : {}),
    ...(Number.isInteger(mqttPort) && mqttPort > 0 ? { mqttPort } : {}),
    // The local S3's buckets live beside the stack file (.fleetgate/s3), across restarts, like an account's.
    s3Root: join(dirname(stackFilePath()), 's3'),
  };
}
