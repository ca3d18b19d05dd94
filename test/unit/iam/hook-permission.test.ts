/**
 * AWS IoT invokes a pre-provisioning hook only where the function's resource-based policy lets
 * `iot.amazonaws.com` invoke it for that template
 * (https://docs.aws.amazon.com/iot/latest/developerguide/pre-provisioning-hook.html); the local
 * stack refuses the invocation otherwise, as a deploy without PreProvisionHookInvokePermission would.
 */
import { describe, expect, it } from 'vitest';
import { loadServerlessConfig } from '../../../local/serverless-config';
import { hookInvokeDenial } from '../../../local/stack';
import { buildStackModel } from '../../../local/stack-model';

const model = buildStackModel(loadServerlessConfig(), { stage: 'local' });
const template = model.provisioningTemplates[0]?.templateName ?? '';
const arn = (name: string) => `arn:aws:iot:us-east-1:123456789012:provisioningtemplate/${name}`;

describe('the hook invoke permission', () => {
  it('serverless.yml lets AWS IoT invoke the hook for its own template', () => {
    expect(template).toBe('fleetgate-local-fleet');
    expect(hookInvokeDenial(model, 'preProvisionHook', arn(template))).toBeUndefined();
  });

  it('refuses another template, and any template once the permission is gone', () => {
    expect(hookInvokeDenial(model, 'preProvisionHook', arn('someone-elses-template'))).toContain(
      'iot.amazonaws.com is not authorized to perform lambda:InvokeFunction',
    );
    const withoutPermission = { ...model, lambdaPermissions: [] };
    expect(hookInvokeDenial(withoutPermission, 'preProvisionHook', arn(template))).toContain(
      'no AWS::Lambda::Permission in serverless.yml grants it',
    );
  });
});
