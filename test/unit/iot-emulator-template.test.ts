import { describe, expect, it } from 'vitest';
import { FaultInjector, seededRandom } from '../../local/iot-emulator/faults';
import { paginate } from '../../local/iot-emulator/registry';
import { resolveTemplate, TemplateError } from '../../local/iot-emulator/template';

function thingTemplate(thingName: unknown, extra: Record<string, unknown> = {}) {
  return JSON.stringify({
    Parameters: { Serial: { Type: 'String' }, Line: { Type: 'String', Default: 'A' } },
    Resources: { thing: { Type: 'AWS::IoT::Thing', Properties: { ThingName: thingName } } },
    ...extra,
  });
}

describe('resolveTemplate', () => {
  it.each([
    ['Ref', { Ref: 'Serial' }, 'SN-1'],
    ['Ref to a defaulted parameter', { Ref: 'Line' }, 'A'],
    ['Fn::Join', { 'Fn::Join': ['-', ['dev', { Ref: 'Serial' }]] }, 'dev-SN-1'],
    // biome-ignore lint/suspicious/noTemplateCurlyInString: CloudFormation Fn::Sub syntax
    ['Fn::Sub', { 'Fn::Sub': 'line${Line}-${Serial}' }, 'lineA-SN-1'],
    ['Fn::Select + Fn::Split', { 'Fn::Select': [1, { 'Fn::Split': ['-', { Ref: 'Serial' }] }] }, '1'],
    ['Fn::FindInMap', { 'Fn::FindInMap': ['Prefix', { Ref: 'Line' }, 'name'] }, 'alpha'],
    ['Fn::If (true)', { 'Fn::If': ['IsLineA', 'a-thing', 'other'] }, 'a-thing'],
  ])('evaluates %s', (_, expression, expected) => {
    const body = thingTemplate(expression, {
      Mappings: { Prefix: { A: { name: 'alpha' } } },
      Conditions: { IsLineA: { 'Fn::Equals': [{ Ref: 'Line' }, 'A'] } },
    });
    expect(resolveTemplate(body, { Serial: 'SN-1' }).thing?.thingName).toBe(expected);
  });

  it('resolves certificate status, policies, attributes, groups and the device configuration', () => {
    const body = JSON.stringify({
      Parameters: { Serial: { Type: 'String' }, 'AWS::IoT::Certificate::Id': { Type: 'String' } },
      Resources: {
        thing: {
          Type: 'AWS::IoT::Thing',
          OverrideSettings: { AttributePayload: 'MERGE' },
          Properties: {
            ThingName: { Ref: 'Serial' },
            AttributePayload: { serial: { Ref: 'Serial' } },
            ThingGroups: ['g'],
          },
        },
        cert: {
          Type: 'AWS::IoT::Certificate',
          Properties: { CertificateId: { Ref: 'AWS::IoT::Certificate::Id' }, Status: 'Active' },
        },
        named: { Type: 'AWS::IoT::Policy', Properties: { PolicyName: 'p' } },
        inline: {
          Type: 'AWS::IoT::Policy',
          Properties: { PolicyDocument: { Version: '2012-10-17', Statement: [] } },
        },
      },
      // biome-ignore lint/suspicious/noTemplateCurlyInString: CloudFormation Fn::Sub syntax
      DeviceConfiguration: { topic: { 'Fn::Sub': 'devices/${Serial}' } },
    });
    const resolved = resolveTemplate(body, { Serial: 'SN-9', 'AWS::IoT::Certificate::Id': 'abc' });
    expect(resolved).toEqual({
      thing: {
        thingName: 'SN-9',
        attributes: { serial: 'SN-9' },
        thingTypeName: undefined,
        thingGroups: ['g'],
        overrideSettings: { AttributePayload: 'MERGE' },
      },
      certificate: { certificateId: 'abc', status: 'ACTIVE' },
      policies: [{ policyName: 'p' }, { policyDocument: '{"Version":"2012-10-17","Statement":[]}' }],
      deviceConfiguration: { topic: 'devices/SN-9' },
      parameters: { Serial: 'SN-9', 'AWS::IoT::Certificate::Id': 'abc' },
    });
  });

  it.each([
    ['a missing parameter', thingTemplate({ Ref: 'Serial' }), {}],
    ['a Ref to an undeclared parameter', thingTemplate({ Ref: 'Nope' }), { Serial: 'x' }],
    ['invalid JSON', '{', {}],
    ['no Resources', '{"Parameters":{}}', {}],
    [
      'an unsupported resource type',
      JSON.stringify({ Resources: { x: { Type: 'AWS::S3::Bucket', Properties: {} } } }),
      {},
    ],
  ])('throws TemplateError for %s', (_, body, params) => {
    expect(() => resolveTemplate(body, params)).toThrow(TemplateError);
  });
});

describe('paginate', () => {
  it('walks a list with opaque tokens and validates the page size', () => {
    const items = Array.from({ length: 5 }, (_, i) => i);
    const opts = { defaultSize: 2, maxSize: 3, what: 'pageSize' };
    const first = paginate(items, undefined, undefined, opts);
    const second = paginate(items, first.next, undefined, opts);
    const third = paginate(items, second.next, undefined, opts);
    expect([first.page, second.page, third.page]).toEqual([[0, 1], [2, 3], [4]]);
    expect(third.next).toBeUndefined();
    expect(() => paginate(items, undefined, 4, opts)).toThrow(/pageSize/);
    expect(() => paginate(items, 'garbage!', 2, opts)).toThrow(/token/);
  });
});

describe('FaultInjector', () => {
  it('grants one second of quota as a burst and refills continuously', () => {
    let now = 0;
    const faults = new FaultInjector({ quotas: { UpdateCertificate: 10 } }, () => now);
    for (let i = 0; i < 10; i += 1) faults.takeToken('UpdateCertificate');
    expect(() => faults.takeToken('UpdateCertificate')).toThrow('Rate exceeded');
    now = 250;
    faults.takeToken('UpdateCertificate');
    faults.takeToken('UpdateCertificate');
    expect(() => faults.takeToken('UpdateCertificate')).toThrow('Rate exceeded');
    faults.takeToken('SomethingUnlimited');
  });

  it('is reproducible for a seed', () => {
    const a = seededRandom(3);
    const b = seededRandom(3);
    expect([a(), a(), a()]).toEqual([b(), b(), b()]);
  });
});
