/**
 * The hook module as Lambda loads it (dependencies composed from the environment at import time):
 * what it denies before any store access. Everything that reads or writes runs against DynamoDB
 * Local in test/integration/pre-provision-hook-handler.test.ts.
 */
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ProvisioningStore } from '../../shared/store/provisioning-store';
import { lambdaContext } from '../support/lambda';

// The module composes its dependencies from the environment at import time, as in Lambda.
vi.hoisted(() => {
  process.env.TABLE_NAME = 'hook-unit';
  process.env.THING_NAME_PREFIX = 'fg-';
  process.env.DEFAULT_ALLOWED_CLAIM = '*';
});
const { handler } = await import('../../functions/pre-provision-hook/handler');

const sample = (name: string) =>
  JSON.parse(readFileSync(new URL(`../../events/hook/${name}`, import.meta.url), 'utf8')) as Record<
    string,
    unknown
  >;

let storeCalls: string[];
beforeEach(() => {
  storeCalls = [];
  for (const method of ['loadProvisioningFacts', 'bindCertificate'] as const) {
    vi.spyOn(ProvisioningStore.prototype, method).mockImplementation(() => {
      storeCalls.push(method);
      throw new Error('the store must not be reached');
    });
  }
});
afterEach(() => {
  vi.restoreAllMocks();
});

describe('preProvisionHook handler', () => {
  it.each([['missing-serial.json'], ['invalid-serial.json'], ['csr-instead-of-certificate.json']])(
    'denies %s without touching the store',
    async (name) => {
      expect(await handler(sample(name), lambdaContext())).toEqual({ allowProvisioning: false });
      expect(storeCalls).toEqual([]);
    },
  );

  it.each([null, 'text', 42, [], {}, { ...sample('allowed.json'), parameters: 'SN-000001' }])(
    'denies a malformed event %j and never throws',
    async (event) => {
      await expect(handler(event, lambdaContext())).resolves.toEqual({ allowProvisioning: false });
      expect(storeCalls).toEqual([]);
    },
  );

  it('reaches the store for a well-formed request (the spies above see it)', async () => {
    expect(await handler(sample('allowed.json'), lambdaContext())).toEqual({ allowProvisioning: false });
    expect(storeCalls).toEqual(['loadProvisioningFacts']);
  });
});
