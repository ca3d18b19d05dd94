/**
 * Once per acceptance run, before any flow: resolve the target (start the local stack, or find the
 * deployment on AWS and fail fast if the suite cannot run there) and hand its descriptor to the
 * test files; afterwards, stop the local stack the run started.
 */
import { randomBytes } from 'node:crypto';
import type { TestProject } from 'vitest/node';
import { awsClients, resolveAwsTarget } from './aws-target';
import { startLocalTarget } from './local-target';
import { serviceName } from './names';
import { optionsFromEnv } from './options';
import type { TargetDescriptor } from './target';

declare module 'vitest' {
  export interface ProvidedContext {
    acceptanceTarget: TargetDescriptor;
  }
}

/** Unique per run (serials, thing names, CA subjects): re-running against the same stack works. */
function newRunId(): string {
  return `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`.toUpperCase();
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const options = optionsFromEnv();
  const runId = newRunId();
  if (options.target === 'aws') {
    const clients = awsClients(options.region as string);
    try {
      const descriptor = await resolveAwsTarget(
        { service: serviceName(), stage: options.stage as string, region: options.region as string, runId },
        clients,
      );
      process.stdout.write(
        `acceptance run ${runId} on AWS: stack ${descriptor.stackName} (${descriptor.region}), ${descriptor.endpoint.url}\n`,
      );
      project.provide('acceptanceTarget', descriptor);
    } finally {
      clients.cloudformation.destroy();
      clients.iot.destroy();
      clients.lambda.destroy();
    }
    return async () => undefined;
  }
  const local = await startLocalTarget({
    runId,
    ...(options.stackFile ? { stackFile: options.stackFile } : {}),
  });
  process.stdout.write(`acceptance run ${runId} on the local stack: ${local.descriptor.endpoint.url}\n`);
  project.provide('acceptanceTarget', local.descriptor);
  return () => local.stop();
}
