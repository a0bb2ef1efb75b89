import { Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { StageOperations, UserStage } from '../../lib';
import { BUILT_STAGES } from '../../lib/stages/stage-table';
import { newApp, synthStage } from '../helpers';
import { stageTemplates } from '../stage-templates';

const metric = new cloudwatch.Metric({ namespace: 'Shop', metricName: 'Orders', statistic: 'Sum' });

function build(alarmEmail?: string) {
  const stack = new Stack(newApp(), 'Test');
  const operations = new StageOperations(stack, 'Operations', { alarmEmail });
  return { stack, operations };
}

describe('StageOperations', () => {
  const { stack, operations } = build('ops@example.com');
  operations.addHealthAlarm('Broken', { metric, threshold: 1, description: 'Something broke.' });
  operations.addOutgrowSignal('Busy', { metric, threshold: 500, description: 'Many orders.' });
  operations.adviseNextStage({
    alarmName: 'Test-time-for-stage-10',
    description: 'Run npx cdk deploy -c stage=10.',
  });
  operations.monitorDistribution('E123EXAMPLE');
  const template = Template.fromStack(stack);
  const topic = { Ref: Match.stringLikeRegexp('^OperationsAlarmTopic[0-9A-F]{8}$') };

  test('an alarm topic encrypted with a rotated customer managed key that CloudWatch may use, TLS only', () => {
    template.hasResourceProperties('AWS::KMS::Key', {
      EnableKeyRotation: true,
      KeyPolicy: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Principal: { Service: 'cloudwatch.amazonaws.com' },
            Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
          }),
        ]),
      },
    });
    template.hasResourceProperties('AWS::SNS::Topic', {
      KmsMasterKeyId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^OperationsAlarmTopicKey'), 'Arn'] },
    });
    const [policy] = Object.values(template.findResources('AWS::SNS::TopicPolicy'));
    expect(policy.Properties.PolicyDocument.Statement).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        expect.objectContaining({
          Effect: 'Allow',
          Action: 'sns:Publish',
          Principal: { Service: 'cloudwatch.amazonaws.com' },
        }),
      ]),
    );
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ops@example.com',
    });
  });

  test('health alarms notify the topic when they fire and when they clear; missing data is not an alarm', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmDescription: 'Something broke.',
      AlarmActions: [topic],
      OKActions: [topic],
      TreatMissingData: 'notBreaching',
    });
  });

  test('outgrow signals notify no one themselves: the composite names the next stage and notifies once', () => {
    const busy = Object.entries(template.findResources('AWS::CloudWatch::Alarm')).find(
      ([, a]) => a.Properties.AlarmDescription === 'Many orders.',
    )!;
    expect(busy[1].Properties.AlarmActions).toBeUndefined();
    template.hasResourceProperties('AWS::CloudWatch::CompositeAlarm', {
      AlarmName: 'Test-time-for-stage-10',
      AlarmDescription: 'Run npx cdk deploy -c stage=10.',
      AlarmActions: [topic],
      AlarmRule: { 'Fn::Join': ['', ['(ALARM("', { 'Fn::GetAtt': [busy[0], 'Arn'] }, '"))']] },
    });
  });

  test("CloudFront's error rate is read from us-east-1, where CloudFront publishes it", () => {
    const [dashboard] = Object.values(template.findResources('AWS::CloudWatch::Dashboard'));
    const body = JSON.stringify(dashboard.Properties.DashboardBody);
    expect(body).toMatch(
      /AWS\/CloudFront.*5xxErrorRate.*DistributionId.*E123EXAMPLE.*Region.*Global.*\\"region\\":\\"us-east-1\\"/,
    );
  });
});

test('outgrow thresholds are props: the stage table is a default', () => {
  const { template } = synthStage(UserStage.USERS_100K, {
    outgrowThresholds: { cpuPercent: 60, cacheMemoryPercent: 90 },
  });
  template.hasResourceProperties('AWS::CloudWatch::Alarm', {
    Threshold: 60,
    AlarmDescription: 'The database has averaged 60% CPU or more for an hour.',
  });
  template.hasResourceProperties('AWS::CloudWatch::Alarm', {
    Threshold: 90,
    AlarmDescription: 'The cache has used 90% of its memory or more for an hour.',
  });
});

test.each([
  [
    'a CPU threshold above 100%',
    () =>
      new StageOperations(new Stack(newApp(), 'T'), 'Operations', { outgrowThresholds: { cpuPercent: 150 } }),
    /outgrowThresholds\.cpuPercent must be a whole number from 10 to 100; got 150\./,
  ],
  [
    'more evaluation periods than a day holds',
    () =>
      build().operations.addHealthAlarm('Long', {
        metric,
        threshold: 1,
        evaluationPeriods: 300,
        description: 'd',
      }),
    /alarm Long evaluationPeriods must be a whole number from 1 to 288; got 300\./,
  ],
  [
    'a threshold that is not a number',
    () => build().operations.addHealthAlarm('Nan', { metric, threshold: NaN, description: 'd' }),
    /alarm Nan threshold must be a finite number; got NaN\./,
  ],
  [
    'not an address',
    () => build('ops'),
    /alarmEmail must be an e-mail address such as ops@example\.com; got 'ops'\./,
  ],
  [
    'no outgrow signals',
    () => build().operations.adviseNextStage({ alarmName: 'x', description: 'y' }),
    /adviseNextStage needs outgrow signals/,
  ],
  [
    'an alarm name over 255 characters',
    () => {
      const { operations } = build();
      operations.addOutgrowSignal('Busy', { metric, threshold: 1, description: 'd' });
      operations.adviseNextStage({ alarmName: 'a'.repeat(256), description: 'y' });
    },
    /the next-stage alarm name must be at most 255 characters \(a CloudWatch limit\); got 256\./,
  ],
  [
    'a description over 1024 characters',
    () => build().operations.addHealthAlarm('Long', { metric, threshold: 1, description: 'd'.repeat(1025) }),
    /an alarm description must be at most 1024 characters \(a CloudWatch limit\); got 1025\./,
  ],
])('%s fails at synth', (_what, make, message) => {
  expect(make).toThrow(message);
});

describe.each(BUILT_STAGES)('stage %s operations', (stage) => {
  const template = Template.fromJSON(stageTemplates(stage).primary.template);
  const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm'));
  const [topic] = Object.keys(template.findResources('AWS::SNS::Topic'));
  const topicRef = { Ref: topic };
  const notifying = alarms.filter(
    (a) => JSON.stringify(a.Properties.AlarmActions) === JSON.stringify([topicRef]),
  );

  test('an alarm topic, a dashboard, three or more health alarms that notify it', () => {
    template.resourceCountIs('AWS::SNS::Topic', 1);
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    expect(notifying.length).toBeGreaterThanOrEqual(3);
    template.hasOutput('AlarmTopicArn', { Value: topicRef });
  });

  test('a composite alarm that names the next stage and the command, or what to scale at the last one', () => {
    const [composite] = Object.values(template.findResources('AWS::CloudWatch::CompositeAlarm'));
    const next = BUILT_STAGES[BUILT_STAGES.indexOf(stage) + 1];
    if (next) {
      expect(composite.Properties.AlarmName).toBe(`ScaleStages-time-for-stage-${next}`);
      expect(composite.Properties.AlarmDescription).toContain(`npx cdk deploy -c stage=${next}`);
    } else {
      expect(composite.Properties.AlarmName).toBe(`ScaleStages-stage-${stage}-at-capacity`);
      expect(composite.Properties.AlarmDescription).toMatch(/Scale within the stage: raise webMaxCapacity/);
    }
    expect(composite.Properties.AlarmActions).toEqual([topicRef]);
  });

  test('the alarms the stage needs: replica lag and evictions from 100k, dead letters at 1m', () => {
    const described = notifying.map((a) => a.Properties.AlarmDescription as string).join('\n');
    const from = (s: UserStage) => BUILT_STAGES.indexOf(stage) >= BUILT_STAGES.indexOf(s);
    expect(/lagged 60 seconds/.test(described)).toBe(from(UserStage.USERS_100K));
    expect(/evicts keys/.test(described)).toBe(from(UserStage.USERS_100K));
    expect(/dead-letter queue/.test(described)).toBe(from(UserStage.USERS_1M));
  });
});
