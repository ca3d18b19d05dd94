/**
 * Lambda entry point of `prepareAccount`, the function behind `Custom::FleetgateAccount`.
 * Composition happens once per container, here; the behaviour is in `custom-resource.ts`.
 */
import { IoTClient } from '@aws-sdk/client-iot';
import { createLogger } from '../../shared/logging';
import { createHandler } from './custom-resource';

export { createHandler } from './custom-resource';

export const handler = createHandler({ iot: new IoTClient({}), logger: createLogger('prepareAccount') });
