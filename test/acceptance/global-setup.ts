/**
 * Once per acceptance run, before any flow: resolve the target (start the local stack, or find the
 * deployment on AWS and fail fast if the suite cannot run there) and hand its descriptor to the
 * test files; afterwards, stop the local stack the run started.
 */
import type { TestProject } from 'vitest/node';
import { awsClients, resolveAwsTarget } from './aws-target';
import { startLocalTarget } from './local-target';
import { serviceName } from './names';
import { ENV, newRunId, optionsFromEnv } from './options';
import type { AwsDescriptor, TargetDescriptor } from './target';

declare module 'vitest' {
  export interface ProvidedContext {
    acceptanceTarget: TargetDescriptor;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const options = optionsFromEnv();
  const runId = newRunId();
  if (options.target === 'aws') {
    const descriptor = await awsDescriptor(options.stage as string, options.region as string, runId);
    process.stdout.write(
      `acceptance run ${descriptor.runId} on AWS: stack ${descriptor.stackName} (${descriptor.region}), ${descriptor.endpoint.url}\n`,
    );
    project.provide('acceptanceTarget', descriptor);
    return async () => undefined;
  }
  const ownStackFile = process.env[ENV.ownStackFile];
  const local = await startLocalTarget({
    runId,
    ...(options.stackFile ? { stackFile: options.stackFile } : {}),
    ...(ownStackFile ? { ownStackFile } : {}),
  });
  process.stdout.write(`acceptance run ${runId} on the local stack: ${local.descriptor.endpoint.url}\n`);
  project.provide('acceptanceTarget', local.descriptor);
  return () => local.stop();
}

/** The runner's resolution (run.ts), or — for a bare `vitest --config` run — one made here. */
async function awsDescriptor(stage: string, region: string, runId: string): Promise<AwsDescriptor> {
  const given = process.env[ENV.descriptor];
  if (given) return JSON.parse(given) as AwsDescriptor;
  const clients = awsClients(region);
  try {
    return await resolveAwsTarget({ service: serviceName(), stage, region, runId }, clients);
  } finally {
    clients.cloudformation.destroy();
    clients.iot.destroy();
    clients.lambda.destroy();
  }
}
