/**
 * Every operation of the AWS IoT service model (control plane, `@aws-sdk/client-iot`) and the AWS IoT data
 * plane (`@aws-sdk/client-iot-data-plane`), with its restJson1 HTTP binding, read from the schemas those
 * SDK packages ship. The emulator matches a request it does not serve against this table, so a real
 * operation it does not emulate fails as such (`NotEmulatedException` naming it) instead of with an
 * answer AWS would never give.
 */
import * as iot from '@aws-sdk/client-iot';
import * as dataPlane from '@aws-sdk/client-iot-data-plane';
import type { Route } from './control-plane';

/** One operation of the service model. */
export interface ModelOperation extends Pick<Route, 'api' | 'method' | 'path' | 'greedyLabel'> {
  service: 'iot' | 'iot-data';
}

/**
 * An operation schema as the SDK ships it: `[9, namespace, name, { http: [method, uri, status] }, input,
 * output]`.
 */
function operations(module: Record<string, unknown>, service: ModelOperation['service']): ModelOperation[] {
  const found: ModelOperation[] = [];
  for (const [exportName, value] of Object.entries(module)) {
    if (!exportName.endsWith('$') || !Array.isArray(value) || value[0] !== 9) continue;
    const name = value[2];
    const http = (value[3] as { http?: unknown[] } | undefined)?.http;
    if (typeof name !== 'string' || !Array.isArray(http)) continue;
    const [method, uri] = http as [Route['method'], string];
    const path = uri.split('?')[0] as string;
    const greedy = /\{([^}]+)\+\}/.exec(path)?.[1];
    found.push({
      service,
      api: name,
      method,
      path: greedy ? path.replace(`{${greedy}+}`, `{${greedy}}`) : path,
      ...(greedy ? { greedyLabel: greedy } : {}),
    });
  }
  // Literal segments first, so `/things/{thingName}/principals-v2` is not taken for a label route.
  return found.sort((a, b) => literalWeight(b.path) - literalWeight(a.path));
}

function literalWeight(path: string): number {
  return path.split('/').filter((segment) => segment !== '' && !segment.startsWith('{')).length;
}

let cached: ModelOperation[] | undefined;

/** Every AWS IoT control- and data-plane operation (283 in `@aws-sdk/client-iot` 3.1138.0 + data plane). */
export function serviceModelOperations(): ModelOperation[] {
  cached ??= [
    ...operations(iot as unknown as Record<string, unknown>, 'iot'),
    ...operations(dataPlane as unknown as Record<string, unknown>, 'iot-data'),
  ];
  return cached;
}
