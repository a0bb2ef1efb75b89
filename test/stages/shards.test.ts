/**
 * Sharding in the blueprint: `databaseShards` at stage 1m splits the users' data over the database
 * (shard 0) and more databases sized as it is, in place, replacing nothing; at stage 10m each secondary
 * region replicates every shard and its app reads the replicas by the same map.
 */
import { fullDiff } from '@aws-cdk/cloudformation-diff';
import { CfnElement } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import { AppSource, MultiRegion, SecondaryRegionStack, StageStack, StageStacks, UserStage } from '../../lib';
import { complianceReportOf } from '../compliance-report';
import { ORDER_RULES } from '../deploy-rules/rules';
import { CfnTemplate } from '../deploy-rules/template';
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
    /databaseShards \(prop or context key\) must be a whole number from 2 to 12, the database included; got '1'/,
  ],
  [UserStage.USERS_1M, 13, /must be a whole number from 2 to 12.*got '13'/],
  [UserStage.USERS_10M, 2.5, /must be a whole number from 2 to 12.*got '2.5'/],
])('stage %s with databaseShards %d fails', (stage, databaseShards, message) => {
  expect(() => synthStage(stage, { databaseShards })).toThrow(message);
});

describe('stage 10m with three shards', () => {
  const tenMillion = synthStage(UserStage.USERS_10M, { databaseShards: 3 });
  const [region] = tenMillion.secondaries;
  const replicas = region.stack.shardReplicas;
  const id = (element: unknown) => region.stack.getLogicalId(element as CfnElement);

  test("the primary has the shards, replicates each shard's secret to the region and says where each shard is", () => {
    expect(tenMillion.stack.shards!.shards).toHaveLength(3);
    // The database's secret (shard 0) and each other shard's: three secrets replicated to the region.
    const replicated = tenMillion.template.findResources('AWS::SecretsManager::Secret', {
      Properties: { ReplicaRegions: [{ Region: 'us-west-2' }] },
    });
    expect(
      Object.keys(replicated)
        .map((id) => id.replace(/InstanceSecret\w+$/, ''))
        .sort(),
    ).toEqual(['ScaleStagesDatabase', 'ScaleStagesShardsShard1', 'ScaleStagesShardsShard2']);
    for (const shard of [1, 2]) {
      tenMillion.template.hasOutput(`Shard${shard}InstanceIdentifier`, { Value: { Ref: Match.anyValue() } });
      tenMillion.template.hasOutput(`Shard${shard}SecretNameWithSuffix`, {
        Value: { 'Fn::Select': [6, Match.anyValue()] },
      });
    }
  });

  test("the region has a cross-region replica of each shard, its source read from the primary's outputs", () => {
    expect(replicas).toHaveLength(2);
    replicas.forEach((replica, i) => {
      expect(region.stack.resolve(replica.instance.sourceDbInstanceIdentifier)).toEqual({
        'Fn::Join': ['', expect.arrayContaining([':rds:us-east-1:'])],
      });
      expect(JSON.stringify(region.stack.resolve(replica.instance.sourceDbInstanceIdentifier))).toContain(
        `PrimaryShard${i + 1}InstanceIdentifier`,
      );
      expect(replica.instance.dbInstanceClass).toBe('db.m7g.xlarge');
      expect(replica.instance.deletionProtection).toBe(true);
    });
    for (const name of ['Shard1InstanceIdentifier', 'Shard2SecretNameWithSuffix']) {
      region.template.hasResourceProperties('AWS::SSM::Parameter', {
        Value: { 'Fn::GetStackOutput': { StackName: 'ScaleStages', OutputName: name, Region: 'us-east-1' } },
      });
    }
    region.template.resourceCountIs('AWS::RDS::DBInstance', 3);
  });

  test("the region's fleet and workers read every shard's replica in shard order, the database's replica first", () => {
    const endpoints = [region.stack.databaseReplica, ...replicas].map((r) => id(r.instance));
    for (const lt of Object.values(region.template.findResources('AWS::EC2::LaunchTemplate'))) {
      const userData = JSON.stringify(lt.Properties.LaunchTemplateData.UserData);
      const hosts = userData.slice(userData.indexOf('DATABASE_SHARD_HOSTS='));
      const order = endpoints.map((e) => hosts.indexOf(`"${e}","Endpoint.Address"`));
      expect(order.every((at) => at >= 0)).toBe(true);
      expect([...order].sort((a, b) => a - b)).toEqual(order);
      expect(userData).toContain('DATABASE_SHARD_SECRET_ARNS=');
      expect(userData).toContain('SHARD_MAP_TTL_SECONDS=10');
    }
    for (const replica of replicas) {
      const sources = Object.values(
        region.template.findResources('AWS::EC2::SecurityGroupIngress', {
          Properties: {
            GroupId: {
              'Fn::GetAtt': [id(replica.connections.securityGroups[0].node.defaultChild), 'GroupId'],
            },
          },
        }),
      ).map((rule) => rule.Properties.SourceSecurityGroupId['Fn::GetAtt'][0] as string);
      expect(sources.map((s) => s.replace(/ServerSecurityGroup\w+$/, '')).sort()).toEqual(['Web', 'Workers']);
    }
  });

  test("each shard replica's lag has an alarm, and the runbook finds the replicas and their secrets", () => {
    for (const shard of [1, 2]) {
      region.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        AlarmDescription: Match.stringLikeRegexp(
          `^Shard ${shard}'s cross-region replica has lagged 5 minutes`,
        ),
      });
    }
    region.template.hasOutput('ShardReplicaIds', {
      Value: { 'Fn::Join': [',', replicas.map((r) => ({ Ref: id(r.instance) }))] },
    });
    region.template.hasOutput('ShardSecretArns', { Value: { 'Fn::Join': [',', Match.anyValue()] } });
  });

  let plain10m: ReturnType<typeof synthStage> | undefined;
  const plainTenMillion = () => (plain10m ??= synthStage(UserStage.USERS_10M));

  test('each shard after the first costs a database in the primary and a replica in each other region', () => {
    const cost = (stage: ReturnType<typeof synthStage>) =>
      stage.stack.estimatedMonthlyCost() + stage.secondaries[0].stack.estimatedMonthlyCost();
    // $495.76 as at 1m, its secret's replica $0.40, and in the region db.m7g.xlarge single-AZ $245.28
    // with 20 GiB of storage $2.30, its KMS key $1 and its lag alarm $0.10.
    expect((cost(tenMillion) - cost(plainTenMillion())) / 2).toBeCloseTo(495.76 + 0.4 + 248.68, 1);
  });

  test('at stage 10m the "at capacity" alarm says to shard, or add a shard, when the database CPU fired', () => {
    for (const stage of [plainTenMillion(), tenMillion]) {
      stage.template.hasResourceProperties('AWS::CloudWatch::CompositeAlarm', {
        AlarmDescription: Match.stringLikeRegexp(
          'at capacity.*If DatabaseCpu fired, the database is outgrowing one writer: split the users over database shards, or add one \\(databaseShards',
        ),
      });
    }
  });

  test("the most shards (12) leave both stacks 50 resources or more below CloudFormation's 500", () => {
    const count = (t: { toJSON(): object }) =>
      Object.keys((t.toJSON() as { Resources: object }).Resources).length;
    const plain = plainTenMillion();
    // An upper bound: each of the 9 further shards adds at most what shards 1 and 2 added, each (the
    // reshard document, added once, counted in). cdk synth -c stage=10m -c databaseShards=12 measured 430
    // and 291.
    const perShard = Math.ceil((count(tenMillion.template) - count(plain.template)) / 2);
    const perReplica = Math.ceil((count(region.template) - count(plain.secondaries[0].template)) / 2);
    expect(count(tenMillion.template) + 9 * perShard).toBeLessThanOrEqual(450);
    expect(count(region.template) + 9 * perReplica).toBeLessThanOrEqual(450);
  });

  test('stage 1m with shards goes to stage 10m with shards, and 10m gains shards, replacing nothing', () => {
    expect(dataLossOnUpgrade(json(sharded.template), json(tenMillion.template))).toEqual([]);
    expect(dataLossOnUpgrade(json(plainTenMillion().template), json(tenMillion.template))).toEqual([]);
    const [plainRegion] = plainTenMillion().secondaries;
    expect(dataLossOnUpgrade(json(plainRegion.template), json(region.template))).toEqual([]);
  });

  test("from stage 1m with shards, the region deploys first and finds every output it reads in 1m's primary", () => {
    const [readsOutputs] = ORDER_RULES;
    const deployed = new Map([['ScaleStages', sharded.template.toJSON() as CfnTemplate]]);
    expect(readsOutputs.check(region.template.toJSON() as CfnTemplate, deployed)).toEqual([]);
    // Without the shards' outputs (a 1m stack sharded by release 0.10.0) the region could not deploy.
    const older = structuredClone(deployed.get('ScaleStages')!);
    delete older.Outputs!.Shard1InstanceIdentifier;
    expect(
      readsOutputs.check(region.template.toJSON() as CfnTemplate, new Map([['ScaleStages', older]])),
    ).toEqual([
      expect.stringContaining(
        'reads output ScaleStages.Shard1InstanceIdentifier, which that stack does not have yet',
      ),
    ]);
  });

  test('the context key databaseShards reaches the primary and every region', () => {
    const app = newApp();
    app.node.setContext('databaseShards', '2');
    const stacks = new MultiRegion(app, 'Shop', {
      stage: UserStage.USERS_10M,
      regions: ['us-east-1', 'eu-west-1', 'ap-northeast-1'],
    });
    expect(stacks.primary.shards!.shards).toHaveLength(2);
    expect(stacks.secondaries.map((s) => s.shardReplicas.length)).toEqual([1, 1]);
  });

  test('a region composed with fewer shards than its primary fails, naming both', () => {
    const app = newApp();
    const secondary = new SecondaryRegionStack(app, 'Shop-eu-west-1', {
      region: 'eu-west-1',
      primaryStackName: 'Shop',
      primaryRegion: 'us-east-1',
      databaseShards: 2,
    });
    expect(
      () =>
        new StageStack(app, 'Shop', {
          stage: UserStage.USERS_10M,
          secondaryRegions: [secondary],
          databaseShards: 3,
        }),
    ).toThrow(
      "SecondaryRegionStack Shop-eu-west-1 has databaseShards 2, but its primary has databaseShards 3: give every region the primary's databaseShards.",
    );
  });

  test('a region with databaseShards out of range fails, naming the prop', () => {
    expect(
      () =>
        new SecondaryRegionStack(newApp(), 'Shop-eu-west-1', {
          region: 'eu-west-1',
          primaryStackName: 'Shop',
          primaryRegion: 'us-east-1',
          databaseShards: 1,
        }),
    ).toThrow('SecondaryRegionStack databaseShards must be a whole number from 2 to 12; got 1.');
  });
});

test('cdk-nag and the validator find nothing on the shards, nor on a service beside them', () => {
  const app = newApp({ validate: true });
  new StageStacks(app, 'Shop', {
    stage: UserStage.USERS_1M,
    databaseShards: 2,
    services: [{ name: 'realtime', app: AppSource.demoRealtime(), pathPattern: '/ws/*' }],
  });
  const findings = complianceReportOf(app).findings.filter((f) =>
    f.paths.some((p) => p.startsWith('Shop/Shards') || p.startsWith('Shop/Services')),
  );
  expect(findings.map((f) => f.rule)).toEqual([]);
  // The check reads the service: its servers are in the template it validated.
  expect(app.node.findAll().some((c) => c.node.path === 'Shop/Services/realtime/Fleet')).toBe(true);
});
