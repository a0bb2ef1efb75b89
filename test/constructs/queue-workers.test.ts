import { Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import { QueueWorkers, QueueWorkersProps, StageNetwork } from '../../lib';
import { flattenJoin, newApp } from '../helpers';

function build(props: Partial<QueueWorkersProps> = {}) {
  const stack = new Stack(newApp(), 'Test');
  const vpc = new StageNetwork(stack, 'Network', { natGateways: 1 }).vpc;
  const workers = new QueueWorkers(stack, 'Workers', { vpc, ...props });
  return { stack, vpc, workers };
}

/** The statements of every IAM policy attached to a role whose logical id starts with `rolePrefix`. */
function statementsOf(template: Template, rolePrefix: string): Array<Record<string, unknown>> {
  return Object.values(template.findResources('AWS::IAM::Policy'))
    .filter((p) => JSON.stringify(p.Properties.Roles).includes(rolePrefix))
    .flatMap((p) => p.Properties.PolicyDocument.Statement);
}

describe('QueueWorkers defaults', () => {
  const { stack, workers } = build();
  const producer = new iam.Role(stack, 'Producer', {
    assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
  });
  workers.connectProducer({
    grantPrincipal: producer,
    connections: new ec2.Connections(),
    addEnvironment: (name, value) =>
      producer.addToPrincipalPolicy(
        new iam.PolicyStatement({ actions: ['none:Env'], resources: [`${name}=${value}`] }),
      ),
  });
  const bucket = new s3.Bucket(stack, 'Media');
  workers.enqueueObjectsCreated(bucket, 'uploads/');
  workers.enqueueOnSchedule('Prerender', scheduler.ScheduleExpression.rate(Duration.minutes(5)), {
    type: 'prerender',
  });
  const template = Template.fromStack(stack);

  test('a job queue encrypted by SQS, TLS only, with the visibility of maxJobDuration and a dead-letter queue after 5 tries', () => {
    const queues = template.findResources('AWS::SQS::Queue');
    const [dlqId] = Object.keys(queues).filter((id) => id.startsWith('WorkersDeadLetterQueue'));
    template.hasResource('AWS::SQS::Queue', {
      Properties: {
        SqsManagedSseEnabled: true,
        VisibilityTimeout: 300,
        MessageRetentionPeriod: 345600,
        ReceiveMessageWaitTimeSeconds: 20,
        RedrivePolicy: { deadLetterTargetArn: { 'Fn::GetAtt': [dlqId, 'Arn'] }, maxReceiveCount: 5 },
      },
    });
    expect(queues[dlqId]).toMatchObject({
      Properties: { SqsManagedSseEnabled: true, MessageRetentionPeriod: 1209600 },
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
    const policies = Object.values(template.findResources('AWS::SQS::QueuePolicy'));
    expect(policies).toHaveLength(2);
    for (const policy of policies) {
      expect(policy.Properties.PolicyDocument.Statement).toContainEqual(
        expect.objectContaining({
          Effect: 'Deny',
          Action: 'sqs:*',
          Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        }),
      );
    }
  });

  test('no worker while the queue is empty, up to 10, in the App subnets, with in-service and desired counts collected each minute', () => {
    template.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', {
      MinSize: '0',
      MaxSize: '10',
      VPCZoneIdentifier: [
        { Ref: Match.stringLikeRegexp('NetworkVpcAppSubnet1') },
        { Ref: Match.stringLikeRegexp('NetworkVpcAppSubnet2') },
      ],
      MetricsCollection: [
        { Granularity: '1Minute', Metrics: ['GroupInServiceInstances', 'GroupDesiredCapacity'] },
      ],
    });
    template.hasResourceProperties('AWS::EC2::LaunchTemplate', {
      LaunchTemplateData: Match.objectLike({
        InstanceType: 't4g.small',
        MetadataOptions: { HttpTokens: 'required' },
      }),
    });
  });

  test('target tracking on visible jobs per worker in service, at acceptableLatency / jobDuration = 12, defined at zero workers', () => {
    expect(workers.targetBacklogPerWorker).toBe(12);
    template.hasResourceProperties('AWS::AutoScaling::ScalingPolicy', {
      PolicyType: 'TargetTrackingScaling',
      TargetTrackingConfiguration: {
        TargetValue: 12,
        CustomizedMetricSpecification: {
          Metrics: [
            Match.objectLike({
              Id: 'visible',
              ReturnData: false,
              MetricStat: Match.objectLike({
                Metric: Match.objectLike({
                  MetricName: 'ApproximateNumberOfMessagesVisible',
                  Namespace: 'AWS/SQS',
                }),
                Stat: 'Sum',
              }),
            }),
            Match.objectLike({
              Id: 'workers',
              ReturnData: false,
              MetricStat: Match.objectLike({
                Metric: Match.objectLike({
                  MetricName: 'GroupInServiceInstances',
                  Namespace: 'AWS/AutoScaling',
                }),
              }),
            }),
            Match.objectLike({
              Id: 'backlog',
              Expression: 'visible / IF(workers > 0, workers, 1)',
              ReturnData: true,
            }),
          ],
        },
      },
    });
  });

  test('the first job starts a worker: an alarm on jobs waiting while none is wanted triggers +1', () => {
    const [policyId] = Object.entries(template.findResources('AWS::AutoScaling::ScalingPolicy')).find(
      ([, p]) => p.Properties.PolicyType === 'StepScaling',
    )!;
    template.hasResourceProperties('AWS::AutoScaling::ScalingPolicy', {
      PolicyType: 'StepScaling',
      AdjustmentType: 'ChangeInCapacity',
      StepAdjustments: [{ MetricIntervalLowerBound: 0, ScalingAdjustment: 1 }],
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      AlarmActions: [{ 'Fn::GetAtt': [policyId, 'Arn'] }],
      Metrics: Match.arrayWith([
        Match.objectLike({ Expression: 'IF(visible > 0 AND desired == 0, 1, 0)', ReturnData: true }),
      ]),
    });
  });

  test('workers consume the queue and may protect only their own group from scale-in; the producer may only send', () => {
    const worker = statementsOf(template, 'WorkersServerRole');
    expect(worker).toContainEqual(
      expect.objectContaining({
        Action: expect.arrayContaining([
          'sqs:ReceiveMessage',
          'sqs:DeleteMessage',
          'sqs:ChangeMessageVisibility',
        ]),
      }),
    );
    expect(JSON.stringify(worker)).not.toContain('sqs:SendMessage');
    expect(worker).toContainEqual({
      Action: 'autoscaling:SetInstanceProtection',
      Effect: 'Allow',
      Resource: '*',
      Condition: { StringEquals: { 'autoscaling:ResourceTag/cdk-scale-stages:workers': workers.node.addr } },
    });
    template.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', {
      Tags: Match.arrayWith([
        { Key: 'cdk-scale-stages:workers', PropagateAtLaunch: true, Value: workers.node.addr },
      ]),
    });
    const producer = statementsOf(template, 'Producer');
    expect(producer).toContainEqual(
      expect.objectContaining({ Action: expect.arrayContaining(['sqs:SendMessage']) }),
    );
    expect(JSON.stringify(producer)).not.toContain('sqs:ReceiveMessage');
    expect(JSON.stringify(producer)).toContain('JOB_QUEUE_URL=');
  });

  test('new objects under uploads/ become jobs (S3 event notification), and a schedule sends the pre-render job', () => {
    template.hasResourceProperties('Custom::S3BucketNotifications', {
      NotificationConfiguration: {
        QueueConfigurations: [
          Match.objectLike({
            Events: ['s3:ObjectCreated:*'],
            Filter: { Key: { FilterRules: [{ Name: 'prefix', Value: 'uploads/' }] } },
          }),
        ],
      },
    });
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'rate(5 minutes)',
      Target: Match.objectLike({
        Input: '{"type":"prerender"}',
        RetryPolicy: Match.objectLike({ MaximumRetryAttempts: 3 }),
      }),
    });
  });

  test('the workers run the demo worker, tell it the queue and its visibility timeout, and learn their group at boot', () => {
    const [lt] = Object.values(template.findResources('AWS::EC2::LaunchTemplate'));
    const script = flattenJoin(lt.Properties.LaunchTemplateData.UserData);
    expect(script).toContain('ExecStart=/usr/bin/node /opt/scale-stages/demo-app/worker.js');
    expect(script).toContain('JOB_VISIBILITY_TIMEOUT_SECONDS=300');
    expect(script).toMatch(/JOB_QUEUE_URL=/);
    expect(script).toContain('aws autoscaling describe-auto-scaling-instances');
    expect(script).toContain('WORKER_AUTO_SCALING_GROUP=$GROUP');
    expect(script).toContain('TimeoutStopSec=300');
  });
});

test('acceptableLatency and jobDuration set the backlog per worker', () => {
  const { workers } = build({ acceptableLatency: Duration.minutes(10), jobDuration: Duration.seconds(30) });
  expect(workers.targetBacklogPerWorker).toBe(20);
});

test.each<[string, Partial<QueueWorkersProps>, RegExp]>([
  [
    'a maxJobDuration above SQS visibility limit',
    { maxJobDuration: Duration.hours(13) },
    /Test\/Workers: maxJobDuration must be whole seconds from 1 second to 12 hours \(SQS's longest visibility timeout\); got 13 hours\./,
  ],
  [
    'a dead-letter retention not longer than the queue retention',
    { retentionPeriod: Duration.days(7), deadLetterRetentionPeriod: Duration.days(7) },
    /deadLetterRetentionPeriod must be longer than retentionPeriod: .*got 7 days against 7 days\./,
  ],
  [
    'a retention below a minute',
    { retentionPeriod: Duration.seconds(30) },
    /retentionPeriod must be whole seconds from 1 minute to 14 days; got 30 seconds\./,
  ],
  [
    'min above max',
    { minCapacity: 5, maxCapacity: 3 },
    /minCapacity must be a whole number from 0 to 3 \(at most maxCapacity\); got 5\./,
  ],
  [
    'a maxReceiveCount of 0',
    { maxReceiveCount: 0 },
    /maxReceiveCount must be a whole number from 1 to 1000; got 0\./,
  ],
  [
    'a maxReceiveCount above 1000',
    { maxReceiveCount: 1001 },
    /maxReceiveCount must be a whole number from 1 to 1000; got 1001\./,
  ],
  [
    'a jobDuration above maxJobDuration',
    { jobDuration: Duration.minutes(10) },
    /jobDuration must be whole seconds from 1 second to 5 minutes \(at most maxJobDuration\); got 10 minutes\./,
  ],
  [
    'an unknown instance type',
    { instanceType: new ec2.InstanceType('t4g.huge') },
    /instanceType must be an instance type '<family>\.<size>' that EC2 knows/,
  ],
])('%s fails at synth with the prop, the value and the range', (_what, props, message) => {
  expect(() => build(props)).toThrow(message);
});

test('workers in isolated subnets fail: they could not reach SQS or install the worker', () => {
  const stack = new Stack(newApp(), 'Test');
  const vpc = new StageNetwork(stack, 'Network').vpc;
  expect(() => new QueueWorkers(stack, 'Workers', { vpc })).toThrow(/vpcSubnets selects isolated subnets/);
});
