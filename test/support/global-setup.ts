import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { type DynamoDbLocal, startDynamoDbLocal } from '../../local/dynamodb-local';
import type { CallRecord } from '../../local/iam/authorizer';

declare module 'vitest' {
  export interface ProvidedContext {
    dynamodbEndpoint: string;
  }
}

let ddb: DynamoDbLocal | undefined;
let auditDir: string | undefined;

/**
 * One DynamoDB Local for the whole run (each test file creates its own table, so files stay
 * independent). Integration tests are never skipped: if Java is missing this fails loudly.
 */
export async function setup(project: TestProject): Promise<void> {
  // Every local stack of the run (test workers and the CLI processes they start inherit this) appends
  // its IAM decisions here; teardown fails the run on any denial AWS would also give.
  auditDir = mkdtempSync(join(tmpdir(), 'fleetgate-iam-audit-'));
  process.env.FLEETGATE_IAM_AUDIT ??= join(auditDir, 'audit.jsonl');
  ddb = await startDynamoDbLocal();
  project.provide('dynamodbEndpoint', ddb.endpoint);
  const stop = () => {
    void ddb?.stop();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

export async function teardown(): Promise<void> {
  await ddb?.stop();
  const file = process.env.FLEETGATE_IAM_AUDIT;
  if (!file) return;
  const records = readAudit(file);
  const denied = records.filter((record) => record.decision !== 'Allowed' && !record.altered);
  const calls = new Set(records.map((record) => `${record.functionName} ${record.action}`));
  process.stdout.write(
    `\nlocal IAM: ${calls.size} distinct (function, action) pairs authorized across the run, ${denied.length} denied\n`,
  );
  if (auditDir) rmSync(auditDir, { recursive: true, force: true });
  if (denied.length > 0) {
    const lines = [
      ...new Set(denied.map((d) => `${d.functionName}: ${d.action} on ${d.resource} (${d.decision})`)),
    ];
    throw new Error(`the local IAM denied calls AWS would deny too:\n${lines.join('\n')}`);
  }
}

function readAudit(file: string): CallRecord[] {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as CallRecord);
}
