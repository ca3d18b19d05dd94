import { describe, expect, it } from 'vitest';
import { renderPolicyDocument } from '../../local/mqtt/policies';
import { evaluatePolicies, type MqttAction, type PolicyConnection } from '../../local/mqtt/policy';

const ARN = 'arn:aws:iot:us-east-1:123456789012';
const device = renderPolicyDocument('device-policy.json', { region: 'us-east-1', accountId: '123456789012' });
const own: PolicyConnection = { clientId: 'SN-1', thingName: 'SN-1' };

describe('device policy: rotation topics', () => {
  it.each<[string, MqttAction, string, string]>([
    ['publishes its own rotation request', 'iot:Publish', 'topic/fleetgate/SN-1/rotate/request', 'ALLOW'],
    ['subscribes to its own answers', 'iot:Subscribe', 'topicfilter/fleetgate/SN-1/rotate/*', 'ALLOW'],
    ['receives its accepted answer', 'iot:Receive', 'topic/fleetgate/SN-1/rotate/accepted', 'ALLOW'],
    ['receives its rotate/required notice', 'iot:Receive', 'topic/fleetgate/SN-1/rotate/required', 'ALLOW'],
    [
      "cannot publish on another thing's request topic",
      'iot:Publish',
      'topic/fleetgate/SN-2/rotate/request',
      'IMPLICIT_DENY',
    ],
    [
      'cannot forge its own accepted answer',
      'iot:Publish',
      'topic/fleetgate/SN-1/rotate/accepted',
      'IMPLICIT_DENY',
    ],
    [
      "cannot receive another thing's answers",
      'iot:Receive',
      'topic/fleetgate/SN-2/rotate/accepted',
      'IMPLICIT_DENY',
    ],
  ])('%s', (_name, action, resource, verdict) => {
    expect(evaluatePolicies([device], action, `${ARN}:${resource}`, own)).toBe(verdict);
  });
});
