/**
 * `npm run test:acceptance -- …`: the options the runner accepts, and the round trip through the
 * environment to the suite.
 */
import { describe, expect, it } from 'vitest';
import { newRunId, optionsFromEnv, optionsToEnv, parseAcceptanceArgs, UsageError } from './options';

describe('parseAcceptanceArgs', () => {
  it('defaults to the local target and hands everything else to vitest', () => {
    expect(parseAcceptanceArgs([], {})).toEqual({ target: 'local', vitestArgs: [] });
    expect(parseAcceptanceArgs(['rotation', '--reporter=verbose'], {})).toEqual({
      target: 'local',
      vitestArgs: ['rotation', '--reporter=verbose'],
    });
    expect(parseAcceptanceArgs(['--stack-file', '/tmp/s.json'], {})).toMatchObject({
      stackFile: '/tmp/s.json',
    });
  });

  it('takes --target aws with a stage and a region (flag, or AWS_REGION)', () => {
    expect(parseAcceptanceArgs(['--target', 'aws', '--stage', 'prod', '--region', 'eu-west-1'], {})).toEqual({
      target: 'aws',
      stage: 'prod',
      region: 'eu-west-1',
      vitestArgs: [],
    });
    expect(parseAcceptanceArgs(['--target=aws', '--stage=dev'], { AWS_REGION: 'us-east-2' })).toMatchObject({
      stage: 'dev',
      region: 'us-east-2',
    });
  });

  it.each([
    [['--target', 'gcp'], /--target must be local or aws/],
    [['--target', 'aws'], /needs --stage/],
    [['--target', 'aws', '--stage', 'prod'], /needs --region/],
    [['--target', 'aws', '--stage', 'p r o d', '--region', 'eu-west-1'], /--stage must match/],
    [['--target', 'aws', '--stage', 'prod', '--region', 'europe'], /not an AWS region/],
    [['--stage', 'prod'], /go with --target aws/],
    [
      ['--target', 'aws', '--stage', 'prod', '--region', 'eu-west-1', '--stack-file', 'x'],
      /--stack-file goes/,
    ],
    [['--stage'], /--stage needs a value/],
  ])('refuses %j', (args, message) => {
    expect(() => parseAcceptanceArgs(args, {})).toThrow(UsageError);
    expect(() => parseAcceptanceArgs(args, {})).toThrow(message);
  });

  it('round-trips through the environment the runner sets for the suite', () => {
    const options = parseAcceptanceArgs(
      ['--target', 'aws', '--stage', 'qa', '--region', 'ap-southeast-2'],
      {},
    );
    expect(optionsFromEnv(optionsToEnv(options))).toEqual(options);
    expect(optionsFromEnv({})).toEqual({ target: 'local', vitestArgs: [] });
  });
});

describe('newRunId', () => {
  it('is unique per run and fits a serial', () => {
    const ids = new Set(Array.from({ length: 50 }, () => newRunId(1_796_600_000_000)));
    expect(ids.size).toBeGreaterThan(40);
    for (const id of ids) expect(`ACC-${id}-ROTATE1`).toMatch(/^[A-Za-z0-9][A-Za-z0-9_-]{2,63}$/);
  });
});
