/**
 * Renders the IoT documents under iot/ for serverless.yml (`${file(iot/render.cjs):…}`).
 *
 * The JSON files are the source under version control. Their ARNs are CloudFormation `Fn::Sub`
 * strings: `${AWS::Region}` is substituted at deploy time and `${!iot:…}` comes out as the IoT
 * policy variable `${iot:…}`. They are loaded here rather than with `${file(x.json)}` because
 * Serverless would read `${iot:…}` as one of its own variables.
 */
const { readFileSync } = require('node:fs');
const { join } = require('node:path');

const read = (name) => JSON.parse(readFileSync(join(__dirname, name), 'utf8'));

/** Wraps every string that mentions `${` in `Fn::Sub`, leaving the rest of the document as is. */
function substituted(value, variables) {
  if (typeof value === 'string') {
    if (!value.includes('${')) return value;
    return variables ? { 'Fn::Sub': [value, variables] } : { 'Fn::Sub': value };
  }
  if (Array.isArray(value)) return value.map((item) => substituted(item, variables));
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, substituted(item, variables)]),
    );
  }
  return value;
}

module.exports = {
  /** The shared device policy document (one policy for every device, scoped by policy variables). */
  devicePolicy: () => substituted(read('device-policy.json')),
  /** The claim policy: only the Fleet Provisioning MQTT API of this template. */
  claimPolicy: async ({ resolveVariable }) =>
    substituted(read('claim-policy.json'), {
      ProvisioningTemplateName: await resolveVariable('self:custom.provisioningTemplateName'),
    }),
  /** The quarantine policy, attached to the quarantine thing group: denies all but remediation. */
  quarantinePolicy: () => substituted(read('quarantine-policy.json')),
  /** The fleet-provisioning template body, as the JSON string CloudFormation expects. */
  provisioningTemplateBody: async ({ resolveVariable }) => {
    const body = read('provisioning-template.json');
    body.Resources.policy.Properties.PolicyName = await resolveVariable('self:custom.devicePolicyName');
    return JSON.stringify(body);
  },
};
