import { describe, expect, it } from 'vitest';
import { renderPolicyDocument } from '../../local/mqtt/policies';
import { evaluatePolicies, type MqttAction, type PolicyConnection } from '../../local/mqtt/policy';

const ARN = 'arn:aws:iot:us-east-1:123456789012';
const render = { region: 'us-east-1', accountId: '123456789012' };
const claim = renderPolicyDocument('claim-policy.json', {
  ...render,
  parameters: { ProvisioningTemplateName: 'fleet' },
});
const device = renderPolicyDocument('device-policy.json', render);
const quarantine = renderPolicyDocument('quarantine-policy.json', render);
const attached: PolicyConnection = { clientId: 'thing-1', thingName: 'thing-1' };
const unattached: PolicyConnection = { clientId: 'thing-1' };

describe('evaluatePolicies', () => {
  it.each<[string, string[], MqttAction, string, PolicyConnection, string]>([
    // Issue 15: a claim holder can never take a thing's client id (thing names are [a-zA-Z0-9:_-]+).
    [
      'claim: connect with a claim.* client id',
      [claim],
      'iot:Connect',
      'client/claim.SN-1',
      unattached,
      'ALLOW',
    ],
    [
      'claim: connect as a thing name is denied',
      [claim],
      'iot:Connect',
      'client/thing-1',
      unattached,
      'EXPLICIT_DENY',
    ],
    [
      'claim: the claim- look-alike is denied',
      [claim],
      'iot:Connect',
      'client/claim-SN-1',
      unattached,
      'EXPLICIT_DENY',
    ],
    [
      'claim: an extra permissive policy on the claim certificate cannot lift the deny',
      [claim, '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}'],
      'iot:Connect',
      'client/thing-1',
      unattached,
      'EXPLICIT_DENY',
    ],
    [
      'claim: publish CreateCertificateFromCsr',
      [claim],
      'iot:Publish',
      'topic/$aws/certificates/create-from-csr/json',
      unattached,
      'ALLOW',
    ],
    [
      'claim: receive its RegisterThing reply',
      [claim],
      'iot:Receive',
      'topic/$aws/provisioning-templates/fleet/provision/cbor/accepted',
      unattached,
      'ALLOW',
    ],
    [
      'claim: another template is denied',
      [claim],
      'iot:Publish',
      'topic/$aws/provisioning-templates/other/provision/json',
      unattached,
      'IMPLICIT_DENY',
    ],
    [
      'claim: telemetry is denied',
      [claim],
      'iot:Publish',
      'topic/devices/thing-1/telemetry',
      unattached,
      'IMPLICIT_DENY',
    ],
    [
      'claim: subscribe to the reply filter',
      [claim],
      'iot:Subscribe',
      'topicfilter/$aws/certificates/create/json/+',
      unattached,
      'ALLOW',
    ],
    ['device: connect as its own thing', [device], 'iot:Connect', 'client/thing-1', attached, 'ALLOW'],
    [
      'device: connect as another client id',
      [device],
      'iot:Connect',
      'client/thing-2',
      attached,
      'IMPLICIT_DENY',
    ],
    [
      'device: not attached to the thing',
      [device],
      'iot:Connect',
      'client/thing-1',
      unattached,
      'IMPLICIT_DENY',
    ],
    [
      'device: publish its own telemetry',
      [device],
      'iot:Publish',
      'topic/devices/thing-1/telemetry',
      attached,
      'ALLOW',
    ],
    [
      'device: publish another device telemetry',
      [device],
      'iot:Publish',
      'topic/devices/thing-2/telemetry',
      attached,
      'IMPLICIT_DENY',
    ],
    [
      'quarantine: explicit deny wins over the device policy',
      [device, quarantine],
      'iot:Publish',
      'topic/devices/thing-1/telemetry',
      attached,
      'EXPLICIT_DENY',
    ],
    [
      'quarantine: remediation topic stays open',
      [device, quarantine],
      'iot:Publish',
      'topic/fleetgate/quarantine/thing-1/remediation',
      attached,
      'ALLOW',
    ],
    ['no policy: deny by default', [], 'iot:Connect', 'client/thing-1', attached, 'IMPLICIT_DENY'],
  ])('%s', (_name, documents, action, resource, connection, verdict) => {
    expect(evaluatePolicies(documents, action, `${ARN}:${resource}`, connection)).toBe(verdict);
  });

  it('treats a client id with wildcard characters literally in a policy variable', () => {
    // Prepare
    const document = JSON.stringify({
      Statement: [{ Effect: 'Allow', Action: 'iot:Publish', Resource: `${ARN}:topic/c/\${iot:ClientId}` }],
    });
    // Act
    const verdict = evaluatePolicies([document], 'iot:Publish', `${ARN}:topic/c/abc`, { clientId: '*' });
    // Assess
    expect(verdict).toBe('IMPLICIT_DENY');
  });
});
