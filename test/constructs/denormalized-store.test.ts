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
  [{ tableName: 'a b' }, /tableName must be 3 to 255 letters, digits, '_', '-' or '.' .*got 'a b'/],
  [{ tableName: 'ab' }, /tableName must be 3 to 255 letters/],
  [{ homeRegion: 'us-east-9' }, /homeRegion must be an AWS region such as us-east-1; got 'us-east-9'/],
])('%o fails', (props, message) => {
  expect(() => build(props)).toThrow(message);
});

test('a stream from the start: a table with replicas needs one, and CloudFormation changes it only while there is one replica', () => {
  template.hasResourceProperties('AWS::DynamoDB::GlobalTable', {
    StreamSpecification: { StreamViewType: 'NEW_AND_OLD_IMAGES' },
  });
});

describe('replicas', () => {
  /** The replicas a store in `stack` renders after `addReplica` of `regions`, and the stack's rules. */
  function replicated(
    stack: Stack,
    regions: string[],
    props: ConstructorParameters<typeof DenormalizedStore>[2] = {},
  ) {
    const store = new DenormalizedStore(stack, 'Store', { recoveryPeriod: Duration.days(7), ...props });
    regions.forEach((region) => store.addReplica(region));
    const t = Template.fromStack(stack).toJSON();
    const resources = t.Resources as Record<string, { Type: string; Properties: { Replicas: object[] } }>;
    const [table] = Object.values(resources).filter((r) => r.Type === 'AWS::DynamoDB::GlobalTable');
    return { replicas: table.Properties.Replicas as { Region: unknown }[], rules: t.Rules ?? {} };
  }

  test('in a region-agnostic stack: the home region and each replica with the same protection and recovery, and a rule that holds the deploy to the home region', () => {
    const { replicas, rules } = replicated(new Stack(newApp(), 'Agnostic'), ['us-west-2', 'eu-west-1'], {
      homeRegion: 'us-east-1',
    });
    expect(replicas).toEqual(
      ['us-east-1', 'us-west-2', 'eu-west-1'].map((Region) => ({
        Region,
        DeletionProtectionEnabled: true,
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true, RecoveryPeriodInDays: 7 },
      })),
    );
    expect(Object.values(rules)).toContainEqual({
      Assertions: [
        {
          Assert: { 'Fn::Equals': [{ Ref: 'AWS::Region' }, 'us-east-1'] },
          AssertDescription:
            "This stack deploys to us-east-1: its DynamoDB table Agnostic/Store has that region's replica, and replicas in us-west-2, eu-west-1.",
        },
      ],
    });
  });

  test("in a stack with a region: TableV2's own replicas", () => {
    const app = newApp();
    const { replicas } = replicated(new Stack(app, 'Pinned', { env: { region: 'eu-west-1' } }), [
      'eu-central-1',
    ]);
    expect(replicas.map((r) => r.Region)).toEqual(['eu-central-1', 'eu-west-1']);
    expect(replicas[0]).toMatchObject({
      DeletionProtectionEnabled: true,
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true, RecoveryPeriodInDays: 7 },
    });
  });

  test.each([
    [
      undefined,
      'us-west-2',
      /addReplica needs to know the region this stack deploys to.*give the DenormalizedStore homeRegion; got replica region 'us-west-2'/,
    ],
    [
      'us-east-1',
      'us-east-1',
      /addReplica needs a region other than the table's own and those it has \(us-east-1\); got 'us-east-1'/,
    ],
  ])('homeRegion %s, replica %s fails', (homeRegion, region, message) => {
    expect(() => replicated(new Stack(newApp(), 'Agnostic'), [region], { homeRegion })).toThrow(message);
  });

  test('a replica region twice fails', () => {
    expect(() =>
      replicated(new Stack(newApp(), 'Agnostic'), ['us-west-2', 'us-west-2'], { homeRegion: 'us-east-1' }),
    ).toThrow(
      /addReplica needs a region other than the table's own and those it has \(us-east-1, us-west-2\); got 'us-west-2'/,
    );
  });
});

test("fromTableName: another region's stack reads and writes its replica, by name, and watches it", () => {
  const app = newApp();
  const stack = new Stack(app, 'Region', { env: { region: 'us-west-2' } });
  const replica = DenormalizedStore.fromTableName(stack, 'Store', 'Shop-store');
  const web = new LoadBalancedTier(stack, 'Web', {
    vpc: new StageNetwork(stack, 'Network', { natGateways: 1 }).vpc,
  });
  replica.connectApp(web);
  new StageOperations(stack, 'Operations').monitorStore(replica);
  const t = Template.fromStack(stack);
  t.resourceCountIs('AWS::DynamoDB::GlobalTable', 0);
  const statements = Object.values(t.findResources('AWS::IAM::Policy')).flatMap(
    (p) => p.Properties.PolicyDocument.Statement as { Action: string[]; Resource: unknown }[],
  );
  const dynamo = statements.filter((s) => [s.Action].flat().some((a) => a.startsWith('dynamodb:')));
  expect(JSON.stringify(dynamo.map((s) => s.Resource))).toContain(':dynamodb:us-west-2:');
  expect(JSON.stringify(dynamo.map((s) => s.Resource))).toContain(':table/Shop-store');
  t.hasResourceProperties('AWS::CloudWatch::Alarm', {
    AlarmDescription: Match.stringLikeRegexp('throttled'),
  });
  const [lt] = Object.values(t.findResources('AWS::EC2::LaunchTemplate'));
  expect(JSON.stringify(lt.Properties.LaunchTemplateData.UserData)).toContain('STORE_TABLE_NAME=Shop-store');
});

test('cdk-nag and the validator find nothing on the store', () => {
  const { app } = build({}, true);
  const findings = complianceReportOf(app).findings.filter((f) =>
    f.paths.some((p) => p.startsWith('Test/Store')),
  );
  expect(findings.map((f) => f.rule)).toEqual([]);
});
