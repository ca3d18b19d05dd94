/**
 * osls plugin (serverless.yml `plugins:`): one CloudWatch alarm on AWS/Lambda `Errors` and one on
 * `Throttles` for every function of serverless.yml, generated at package time so a new function is
 * never left unwatched. The deploy-rule check `function-alarms` (scripts/deploy-rules) fails a
 * template where a function lacks either.
 *
 * Configuration, `custom.functionAlarms`:
 *   alarmActions: the AlarmActions of every generated alarm (serverless.yml passes the
 *                 `HasAlarmTopic` condition's `Fn::If`, like the other alarms).
 *   periodSeconds: evaluation period (default 300); each alarm fires on Sum > 0 in one period.
 * @see https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html
 */

/** `Errors`: invocations that ended in a function error; `Throttles`: invocations refused for concurrency. */
const METRICS = [
  { metric: 'Errors', suffix: 'errors', what: 'invocations failed (function error or timeout)' },
  { metric: 'Throttles', suffix: 'throttles', what: 'invocations were throttled (no concurrency left)' },
];

class FunctionAlarms {
  constructor(serverless) {
    this.serverless = serverless;
    this.hooks = { 'after:package:compileFunctions': () => this.addAlarms() };
  }

  addAlarms() {
    const service = this.serverless.service;
    const provider = this.serverless.getProvider('aws');
    const naming = provider.naming;
    const config = service.custom?.functionAlarms ?? {};
    const period = Number(config.periodSeconds ?? 300);
    const resources = service.provider.compiledCloudFormationTemplate.Resources;
    const prefix = `${service.service}-${provider.getStage()}`;
    for (const name of service.getAllFunctions()) {
      const functionId = naming.getLambdaLogicalId(name);
      for (const { metric, suffix, what } of METRICS) {
        resources[`${naming.getNormalizedFunctionName(name)}${metric}Alarm`] = {
          Type: 'AWS::CloudWatch::Alarm',
          Properties: {
            AlarmName: `${prefix}-${name}-${suffix}`,
            AlarmDescription: `${name}: ${what}; see the function's logs`,
            Namespace: 'AWS/Lambda',
            MetricName: metric,
            Dimensions: [{ Name: 'FunctionName', Value: { Ref: functionId } }],
            Statistic: 'Sum',
            Period: period,
            EvaluationPeriods: 1,
            Threshold: 0,
            ComparisonOperator: 'GreaterThanThreshold',
            TreatMissingData: 'notBreaching',
            ...(config.alarmActions !== undefined ? { AlarmActions: config.alarmActions } : {}),
          },
        };
      }
    }
  }
}

module.exports = FunctionAlarms;
