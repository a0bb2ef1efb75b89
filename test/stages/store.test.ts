/**
 * The store layer of the blueprint: the feed's DynamoDB table from stage 1m, read and written by the
 * fleet and the workers; at stage 10m a global table with a replica in every region, each region's
 * apps reading and writing their own.
 */
import { Match, Template } from 'aws-cdk-lib/assertions';
import { UserStage } from '../../lib';
import { BUILT_STAGES, layersAt } from '../../lib/stages/stage-table';
import { synthStage } from '../helpers';
import { stageTemplates } from '../stage-templates';

const stage1m = synthStage(UserStage.USERS_1M);
const stage10m = synthStage(UserStage.USERS_10M);

interface Statement {
  readonly Action: string | string[];
  readonly Resource: unknown;
}

/** The IAM statements that allow DynamoDB actions in a template, with the role each policy is for. */
function dynamoStatements(template: typeof stage1m.template): { roles: string; statement: Statement }[] {
  return Object.values(template.findResources('AWS::IAM::Policy')).flatMap((p) =>
    (p.Properties.PolicyDocument.Statement as Statement[])
      .filter((s) => [s.Action].flat().some((a) => a.startsWith('dynamodb:')))
      .map((statement) => ({ roles: JSON.stringify(p.Properties.Roles), statement })),
  );
}

test.each(BUILT_STAGES.filter((s) => !layersAt(s).has('store')))('stage %s has no store', (stage) => {
  Template.fromJSON(stageTemplates(stage).primary.template).resourceCountIs('AWS::DynamoDB::GlobalTable', 0);
});

describe('stage 1m', () => {
  const { template } = stage1m;

  test('one table named after the stack, on demand, with point-in-time recovery, deletion protection, a TTL and a stream, retained', () => {
    template.resourceCountIs('AWS::DynamoDB::GlobalTable', 1);
    template.hasResource('AWS::DynamoDB::GlobalTable', {
      Properties: {
        TableName: 'ScaleStages-store',
        BillingMode: 'PAY_PER_REQUEST',
        TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
        StreamSpecification: { StreamViewType: 'NEW_AND_OLD_IMAGES' },
        Replicas: [
          {
            Region: { Ref: 'AWS::Region' },
            DeletionProtectionEnabled: true,
            PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true, RecoveryPeriodInDays: 35 },
          },
        ],
      },
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
    template.hasOutput('StoreTableName', { Value: { Ref: Match.stringLikeRegexp('^StoreTable') } });
  });

  test('the fleet and the workers may read and write items of the table only, and each knows its name', () => {
    const statements = dynamoStatements(template);
    const roles = statements.map((s) => s.roles);
    expect(roles).toHaveLength(2);
    expect(roles.filter((r) => r.startsWith('[{"Ref":"Web'))).toHaveLength(1);
    expect(roles.filter((r) => r.startsWith('[{"Ref":"Workers'))).toHaveLength(1);
    for (const { statement } of statements) {
      const resources = JSON.stringify([statement.Resource].flat());
      expect(resources).toMatch(/StoreTable\w+/);
      expect(resources).not.toContain('"*"');
      expect([statement.Action].flat()).not.toContain('dynamodb:DeleteTable');
    }
    const templates = Object.values(template.findResources('AWS::EC2::LaunchTemplate'));
    expect(templates).toHaveLength(2);
    for (const lt of templates) {
      expect(JSON.stringify(lt.Properties.LaunchTemplateData.UserData)).toContain('STORE_TABLE_NAME=');
    }
  });

  test('throttles and DynamoDB errors of the store are health alarms', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmDescription: Match.stringLikeRegexp('DynamoDB throttled'),
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmDescription: Match.stringLikeRegexp(
        'DynamoDB answered a request to the store with an internal error',
      ),
    });
  });
});

describe('stage 10m', () => {
  test('the primary region and each secondary region hold a replica, each protected and recoverable, and the primary deploys only to its region', () => {
    const table = Object.values(stage10m.template.findResources('AWS::DynamoDB::GlobalTable'));
    expect(table).toHaveLength(1);
    expect(table[0].Properties.Replicas).toEqual(
      ['us-east-1', 'us-west-2'].map((Region) => ({
        Region,
        DeletionProtectionEnabled: true,
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true, RecoveryPeriodInDays: 35 },
      })),
    );
    expect(stage10m.template.toJSON().Rules.StoreDeployedInHomeRegionCBA3E322.Assertions[0].Assert).toEqual({
      'Fn::Equals': [{ Ref: 'AWS::Region' }, 'us-east-1'],
    });
  });

  test('three regions: a replica in each', () => {
    const { template } = synthStage(UserStage.USERS_10M, {
      regions: ['eu-west-1', 'us-east-1', 'ap-northeast-1'],
    });
    const [table] = Object.values(template.findResources('AWS::DynamoDB::GlobalTable'));
    expect(table.Properties.Replicas.map((r: { Region: string }) => r.Region)).toEqual([
      'eu-west-1',
      'us-east-1',
      'ap-northeast-1',
    ]);
  });

  test("a secondary region's fleet and workers read and write its own replica, by name, and it watches the replica", () => {
    const [{ template }] = stage10m.secondaries;
    template.resourceCountIs('AWS::DynamoDB::GlobalTable', 0);
    const statements = dynamoStatements(template);
    expect(statements).toHaveLength(2);
    for (const { statement } of statements) {
      const resources = JSON.stringify([statement.Resource].flat());
      expect(resources).toContain(':dynamodb:us-west-2:');
      expect(resources).toContain(':table/ScaleStages-store');
    }
    for (const lt of Object.values(template.findResources('AWS::EC2::LaunchTemplate'))) {
      expect(JSON.stringify(lt.Properties.LaunchTemplateData.UserData)).toContain(
        'STORE_TABLE_NAME=ScaleStages-store',
      );
    }
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmDescription: Match.stringLikeRegexp('DynamoDB throttled'),
      Metrics: Match.arrayWith([
        Match.objectLike({
          MetricStat: Match.objectLike({
            Metric: Match.objectLike({ Dimensions: [{ Name: 'TableName', Value: 'ScaleStages-store' }] }),
          }),
        }),
      ]),
    });
  });
});
