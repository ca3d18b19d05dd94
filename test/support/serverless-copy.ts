import { readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Functions wired to the project's queues and rules, pointing at the fixture handlers. */
export const TEST_FUNCTIONS = `functions:
  recordRegistration:
    handler: test/fixtures/handlers/record.handler
    timeout: 5
    environment:
      QUEUE_URL: !Ref RegistrationQueue
      DLQ_ARN: !GetAtt RegistrationDLQ.Arn
      LOG_LEVEL: \${param:logLevel, 'DEBUG'}
      ACCOUNT: \${aws:accountId}
      STAGE: \${sls:stage}
    events:
      - sqs:
          arn: !GetAtt RegistrationQueue.Arn
          batchSize: 5
          functionResponseType: ReportBatchItemFailures
          maximumConcurrency: 2
  lifecycle:
    handler: test/fixtures/handlers/partial-batch.handler
    events:
      - sqs:
          arn: !GetAtt LifecycleQueue.Arn
          batchSize: 10
          functionResponseType: ReportBatchItemFailures
  recordRotation:
    handler: test/fixtures/handlers/record.handler
    events:
      - sqs: { arn: !GetAtt RotationQueue.Arn, batchSize: 1, functionResponseType: ReportBatchItemFailures }
  sweep:
    handler: test/fixtures/handlers/record.handler
    events:
      - schedule: rate(1 day)
  crash:
    handler: test/fixtures/handlers/crash.handler
  crashHard:
    handler: test/fixtures/handlers/crash.handler
    environment:
      CRASH_OUTSIDE: '1'
  slow:
    handler: test/fixtures/handlers/slow.handler
    timeout: 1
`;

/**
 * Writes a copy of the project's serverless.yml to a temp folder with the test functions in place of
 * the real ones (or the project's own with `functions: 'project'`) and short visibility timeouts /
 * receive counts (so redrive takes seconds); `edit` changes anything else (e.g. a rule's topic).
 */
export async function serverlessCopy(
  edit: (text: string) => string = (text) => text,
  options: { functions?: 'fixtures' | 'project' } = {},
): Promise<string> {
  const original = readFileSync(join(PROJECT_ROOT, 'serverless.yml'), 'utf8');
  const lines = original.split('\n');
  const start = lines.findIndex((line) => /^functions:/.test(line));
  const end = lines.findIndex((line, index) => index > start && /^[A-Za-z]/.test(line));
  const withFunctions =
    options.functions === 'project'
      ? original
      : [...lines.slice(0, start), TEST_FUNCTIONS, ...lines.slice(end)].join('\n');
  const fast = withFunctions
    .replace(/VisibilityTimeout: (181|361)\b/g, 'VisibilityTimeout: 1')
    .replaceAll('maxReceiveCount: 5', 'maxReceiveCount: 3');
  const dir = await mkdtemp(join(tmpdir(), 'fleetgate-sls-'));
  const file = join(dir, 'serverless.yml');
  await writeFile(file, edit(fast));
  return file;
}
