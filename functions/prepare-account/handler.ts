/**
 * Lambda entry point of `prepareAccount`, the function behind `Custom::FleetgateAccount`.
 * Composition happens once per container, here; the behaviour is in `create-handler.ts`.
 */
import { IoTClient } from '@aws-sdk/client-iot';
import { createLogger } from '../../shared/logging';
import { createHandler } from './create-handler';

export { createHandler } from './create-handler';

export const handler = createHandler({ iot: new IoTClient({}), logger: createLogger('prepareAccount') });
