import { Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { DenormalizedStore, LoadBalancedTier, StageNetwork, StageOperations } from '../../lib';
import { complianceReportOf } from '../compliance-report';
import { newApp } from '../helpers';

/** A stack with a store, a fleet connected to it and the operations watching it. */
function build(props: ConstructorParameters<typeof DenormalizedStore>[2] = {}, validate = false) {
  const app = newApp({ validate });
  const stack = new Stack(app, 'Test');
  const store = new DenormalizedStore(stack, 'Store', props);
  const web = new LoadBalancedTier(stack, 'Web', {
    vpc: new StageNetwork(stack, 'Network', { natGateways: 1 }).vpc,
  });
  store.connectApp(web);
  const operations = new StageOperations(stack, 'Operations');
  operations.monitorStore(store);
  return { app, stack, store, template: Template.fromStack(stack) };
}

const { stack, store, template } = build();

test('an on-demand table keyed by pk and sk, encrypted, with point-in-time recovery, deletion protection and a TTL, kept when the stack goes', () => {
  template.hasResource('AWS::DynamoDB::GlobalTable', {
    Properties: {
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
      Replicas: [
        Match.objectLike({
          DeletionProtectionEnabled: true,
          PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true, RecoveryPeriodInDays: 35 },
        }),
      ],
    },
    DeletionPolicy: 'Retain',
    UpdateReplacePolicy: 'Retain',
  });
});

test('the app tier may read and write items of this table only, and knows its name', () => {
  const tableArn = { 'Fn::GetAtt': [stack.getLogicalId(store.table.node.defaultChild as never), 'Arn'] };
  const policies = Object.values(template.findResources('AWS::IAM::Policy'));
  const statements = policies.flatMap(
    (p) => p.Properties.PolicyDocument.Statement as { Action: string[]; Resource: unknown }[],
  );
  const dynamo = statements.filter((s) => [s.Action].flat().some((a) => a.startsWith('dynamodb:')));
  expect(dynamo).toHaveLength(1);
  expect(dynamo[0].Action).toEqual(
    expect.arrayContaining(['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query']),
  );
  expect(dynamo[0].Action).not.toContain('dynamodb:DeleteTable');
  expect([dynamo[0].Resource].flat()).toEqual([tableArn]);
  const [lt] = Object.values(template.findResources('AWS::EC2::LaunchTemplate'));
  expect(JSON.stringify(lt.Properties.LaunchTemplateData.UserData)).toContain('STORE_TABLE_NAME=');
});

test('throttles and DynamoDB errors are health alarms of the stage', () => {
  for (const name of ['StoreThrottles', 'StoreErrors']) {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmDescription: Match.stringLikeRegexp(name === 'StoreThrottles' ? 'throttled' : 'internal error'),
    });
  }
});

test.each([
  [
    { recoveryPeriod: Duration.days(36) },
    /recoveryPeriod \(days\) must be a whole number from 1 to 35; got 36/,
  ],
  [
    { recoveryPeriod: Duration.hours(12) },
    /recoveryPeriod \(days\) must be a whole number from 1 to 35; got 0.5/,
  ],
  [
    { timeToLiveAttribute: 'sk' },
    /timeToLiveAttribute must be a name of 1 to 255 characters other than the keys pk and sk .*got 'sk'/,
  ],
  [{ timeToLiveAttribute: '' }, /timeToLiveAttribute must be a name of 1 to 255 characters/],
])('%o fails', (props, message) => {
  expect(() => build(props)).toThrow(message);
});

test('cdk-nag and the validator find nothing on the store', () => {
  const { app } = build({}, true);
  const findings = complianceReportOf(app).findings.filter((f) =>
    f.paths.some((p) => p.startsWith('Test/Store')),
  );
  expect(findings.map((f) => f.rule)).toEqual([]);
});
