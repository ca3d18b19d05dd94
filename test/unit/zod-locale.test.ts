/**
 * zod's `mini` build leaves error messages to the application: without a locale every issue reads
 * "Invalid input". schemas/zod.ts configures zod's English messages, as the classic build does on
 * import. Nothing in this file loads the classic build (it would configure them itself and hide a
 * missing configuration): the schemas and the store's items are parsed as the Lambdas parse them.
 */
import { describe, expect, it } from 'vitest';
import { QuarantineRequest } from '../../schemas/quarantine-request';
import * as z from '../../schemas/zod';

describe('zod messages in English (schemas/zod.ts)', () => {
  it("a type error names what was expected and what came, in zod's words", () => {
    const parsed = z.object({ n: z.number() }).safeParse({ n: 'x' });
    expect(parsed.error?.issues.map((issue) => issue.message)).toEqual([
      'Invalid input: expected number, received string',
    ]);
  });

  it('a quarantine request with bad fields says which rule each breaks', () => {
    const parsed = QuarantineRequest.safeParse({
      requestId: '',
      reason: 'R',
      source: 'nobody',
      at: 'yesterday',
    });
    expect(parsed.error?.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`)).toEqual([
      'requestId: Too small: expected string to have >=1 characters',
      'reason: must be an UPPER_SNAKE reason code',
      expect.stringMatching(/^source: Invalid option: expected one of "preProvisionHook"\|/),
      'at: Invalid ISO datetime',
    ]);
  });
});
