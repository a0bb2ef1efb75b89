/**
 * Sharding in the blueprint: `databaseShards` at stage 1m splits the users' data over the database
 * (shard 0) and more databases sized as it is, in place, replacing nothing; stage 10m refuses it.
 */
import { fullDiff } from '@aws-cdk/cloudformation-diff';
import { Match } from 'aws-cdk-lib/assertions';
import { StageStacks, UserStage } from '../../lib';
import { complianceReportOf } from '../compliance-report';
import { newApp, releaseFixture, releaseStages, synthStage } from '../helpers';
import { dataLossOnUpgrade } from '../upgrade-check';

const plain = synthStage(UserStage.USERS_1M);
const sharded = synthStage(UserStage.USERS_1M, { databaseShards: 3 });
const json = (t: typeof plain.template) => t.toJSON() as { Resources: Record<string, { Type: string }> };

test('three shards: the database and two more of its class, storage and Multi-AZ, each with its own secret rotated', () => {
  const databases = sharded.template.findResources('AWS::RDS::DBInstance', {
    Properties: { SourceDBInstanceIdentifier: Match.absent() },
  });
  expect(
    Object.values(databases).map((db) => [
      db.Properties.DBInstanceClass,
      db.Properties.MultiAZ,
      db.Properties.AllocatedStorage,
    ]),
  ).toEqual(Array(3).fill(['db.m7g.xlarge', true, '20']));
  expect(Object.keys(databases)).toContain(
    plain.stack.getLogicalId(plain.stack.database!.database.node.defaultChild as never),
  );
  const rotations = (t: typeof plain.template) =>
    Object.keys(t.findResources('AWS::SecretsManager::RotationSchedule')).length;
  expect(rotations(sharded.template)).toBe(rotations(plain.template) + 2);
  sharded.template.hasOutput('ReshardDocumentName', {
    Value: { Ref: Match.stringLikeRegexp('^ShardsReshardDocument') },
  });
});

test('the fleet and the workers get every shard, in order, and may reach and read each', () => {
  const templates = Object.values(sharded.template.findResources('AWS::EC2::LaunchTemplate'));
  expect(templates).toHaveLength(2);
  for (const lt of templates) {
    const userData = JSON.stringify(lt.Properties.LaunchTemplateData.UserData);
    for (const name of ['DATABASE_SHARD_HOSTS', 'DATABASE_SHARD_PORTS', 'DATABASE_SHARD_SECRET_ARNS']) {
      expect(userData).toContain(`${name}=`);
    }
  }
  const shards = sharded.stack.shards!.shards.slice(1);
  for (const shard of shards) {
    const group = sharded.stack.getLogicalId(shard.connections.securityGroups[0].node.defaultChild as never);
    const sources = Object.values(
      sharded.template.findResources('AWS::EC2::SecurityGroupIngress', {
        Properties: {
          GroupId: { 'Fn::GetAtt': [group, 'GroupId'] },
          Description: 'PostgreSQL from the app tier',
        },
      }),
    ).map((rule) => rule.Properties.SourceSecurityGroupId['Fn::GetAtt'][0] as string);
    // From the fleet and from the workers (and the shard's own rotation function, besides).
    expect(sources.map((id) => id.replace(/ServerSecurityGroup\w+$/, '')).sort()).toEqual(['Web', 'Workers']);
  }
});

test("each new shard has the database's alarms, and the cost counts each shard as a database", () => {
  for (const shard of ['Shard 1', 'Shard 2']) {
    sharded.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmDescription: Match.stringLikeRegexp(`^${shard} has less than 2 GiB of free storage`),
    });
  }
  const extra = sharded.stack.estimatedMonthlyCost() - plain.stack.estimatedMonthlyCost();
  // Two databases of db.m7g.xlarge Multi-AZ ($490.56 a month each) with their storage, secrets and alarms.
  // $495.76 each: $490.56, 20 GiB of storage $4.60, a secret $0.40, two alarms.
  expect(extra).toBeCloseTo(2 * 495.76, 1);
});

test('turning sharding on, and adding a shard later, replace nothing: the database stays shard 0', () => {
  expect(dataLossOnUpgrade(json(plain.template), json(sharded.template))).toEqual([]);
  const two = synthStage(UserStage.USERS_1M, { databaseShards: 2 });
  expect(dataLossOnUpgrade(json(two.template), json(sharded.template))).toEqual([]);
  const impacts: string[] = [];
  fullDiff(json(two.template), json(sharded.template)).resources.forEachDifference((_id, change) => {
    if (change.resourceType === 'AWS::RDS::DBInstance') impacts.push(change.changeImpact);
  });
  expect(impacts).toEqual(['WILL_CREATE']);
});

test('at stage 1m the "time for stage 10m" alarm says when to shard instead', () => {
  plain.template.hasResourceProperties('AWS::CloudWatch::CompositeAlarm', {
    AlarmDescription: Match.stringLikeRegexp(
      'If DatabaseCpu fired, the database is outgrowing one writer.*databaseShards, docs/resharding.md',
    ),
  });
});

test.each(['0.4.0', '0.5.0', '0.7.0', '0.8.0'].filter((r) => releaseStages(r).includes(UserStage.USERS_1M)))(
  'a stage-1m stack of release %s gains the shards in place: nothing stateful replaced or deleted',
  (release) => {
    expect(
      dataLossOnUpgrade(releaseFixture(release, UserStage.USERS_1M) as object, json(sharded.template)),
    ).toEqual([]);
  },
);

test('the context key databaseShards does what the prop does', () => {
  const app = newApp();
  app.node.setContext('databaseShards', '2');
  const stacks = new StageStacks(app, 'Shop', { stage: UserStage.USERS_1M });
  expect(stacks.primary.shards!.shards).toHaveLength(2);
});

test.each([
  [
    UserStage.USERS_1M,
    1,
    /databaseShards \(prop or context key\) must be a whole number from 2 to 16, the database included; got '1'/,
  ],
  [UserStage.USERS_1M, 17, /must be a whole number from 2 to 16.*got '17'/],
  [
    UserStage.USERS_10M,
    2,
    /databaseShards is not built at stage '10m' yet: each secondary region would need a cross-region replica of every shard/,
  ],
])('stage %s with databaseShards %d fails', (stage, databaseShards, message) => {
  expect(() => synthStage(stage, { databaseShards })).toThrow(message);
});

test('cdk-nag and the validator find nothing on the shards', () => {
  const app = newApp({ validate: true });
  new StageStacks(app, 'Shop', { stage: UserStage.USERS_1M, databaseShards: 2 });
  const findings = complianceReportOf(app).findings.filter((f) =>
    f.paths.some((p) => p.startsWith('Shop/Shards')),
  );
  expect(findings.map((f) => f.rule)).toEqual([]);
});
