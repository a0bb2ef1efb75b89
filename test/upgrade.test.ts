import { fullDiff, ResourceImpact } from '@aws-cdk/cloudformation-diff';
import { UserStage } from '../lib';
import { atLeast, BUILT_STAGES } from '../lib/stages/stage-table';
import { releaseFixture as fixtureOf, releaseStages, synthStage } from './helpers';
import { dataLossOnUpgrade, vpcOriginsUpdatedInPlace } from './upgrade-check';
import { stageTemplates } from './stage-templates';

/** The parts of a synthesized template these tests read. */
interface Template {
  readonly Resources: Record<
    string,
    { Type: string; Properties: Record<string, unknown>; Metadata?: unknown; DependsOn?: string[] }
  >;
}

const releaseFixture = (release: string, stage: UserStage) => fixtureOf<Template>(release, stage);
const templates = new Map(
  BUILT_STAGES.map((stage) => [stage, stageTemplates(stage).primary.template as unknown as Template]),
);
const pairs = BUILT_STAGES.slice(1).map((stage, i) => [BUILT_STAGES[i], stage] as const);

/** A stack deployed from `release` and upgraded to this release keeps its data, at every stage and step. */
function upgradesFromRelease(release: string): void {
  const built = releaseStages(release);
  const sameAndNext = [
    ...built.map((stage) => [stage, stage] as const),
    ...pairs.filter(([from]) => built.includes(from)),
  ];
  test.each(sameAndNext)(
    '%s -> %s on this release: replaces and deletes no stateful resource',
    (from, to) => {
      const deployed = withoutMetadata(releaseFixture(release, from));
      expect(dataLossOnUpgrade(deployed, templates.get(to)!)).toEqual([]);
      expect(vpcOriginsUpdatedInPlace(deployed, templates.get(to)!)).toEqual([]);
    },
  );
}

/**
 * What a stack with a fleet (stage 1k and up) from a release before 0.6.0 gains besides: two subnets
 * named by zone ID, with their route tables, NAT routes and associations; the load balancer's
 * subnets and the fleet's change in place (the fleet rolls one server at a time), and the S3 gateway
 * endpoint serves the new route tables. `fleetChange` is the fleet's own change line.
 */
function movedToVpcOriginZones(fleetChange: string): string[] {
  return [
    ...['Route', 'RouteTable', 'Subnet', 'SubnetRouteTableAssociation'].flatMap((type) =>
      Array<string>(2).fill(`WILL_CREATE AWS::EC2::${type} `),
    ),
    fleetChange,
    'WILL_UPDATE AWS::EC2::VPCEndpoint RouteTableIds',
    'WILL_UPDATE AWS::ElasticLoadBalancingV2::LoadBalancer Subnets',
  ];
}

/**
 * From 0.6.0 the custom resources served by aws-cdk-lib's handlers wait for the handlers' log groups
 * (the CloudFront prefix-list lookup from stage 1, the web client's deployment from stage 100): a new
 * DependsOn, no property change.
 */
function waitForHandlerLogGroups(stage: UserStage): string[] {
  const webClient = stage !== UserStage.USERS_1 && stage !== UserStage.USERS_10;
  return ['WILL_UPDATE Custom::AWS ', ...(webClient ? ['WILL_UPDATE Custom::CDKBucketDeployment '] : [])];
}

/**
 * What release 0.8.0 changes in a stack of an earlier release. The single server (stages 1 to 100) takes
 * its app as a release in its metadata, applied in place by cfn-hup: its user data changes once (stop and
 * start, as any user data change), its role may read its own stack's resource (cfn-get-metadata), and the
 * release's wait condition and handle are new. The fleet bakes each release before its servers signal:
 * new launch template user data (the workers' too, from 1m: the health wait runs in a subshell now), and
 * its role may read the two alarms it watches.
 */
function releasesInPlace(stage: UserStage): string[] {
  if (!hasSingleServer(stage)) {
    const workers = atLeast(stage, UserStage.USERS_1M) ? 2 : 1;
    return [
      'WILL_UPDATE AWS::IAM::Policy PolicyDocument',
      ...Array<string>(workers).fill('WILL_UPDATE AWS::EC2::LaunchTemplate LaunchTemplateData'),
    ];
  }
  return [
    'MAY_REPLACE AWS::EC2::Instance UserData',
    'WILL_UPDATE AWS::IAM::Policy PolicyDocument',
    'WILL_CREATE AWS::CloudFormation::WaitCondition ',
    'WILL_CREATE AWS::CloudFormation::WaitConditionHandle ',
  ];
}

/**
 * What release 0.9.0 adds to a stack of an earlier release at stage 1m or 10m: the store (a new table),
 * its two alarms and dashboard widget, and the grants of the fleet and the workers to it (their launch
 * templates change for the new demo app anyway).
 */
function storeJoins(stage: UserStage): string[] {
  if (!atLeast(stage, UserStage.USERS_1M)) return [];
  return [
    'WILL_CREATE AWS::DynamoDB::GlobalTable ',
    'WILL_CREATE AWS::CloudWatch::Alarm ',
    'WILL_CREATE AWS::CloudWatch::Alarm ',
    'WILL_UPDATE AWS::CloudWatch::Dashboard DashboardBody',
    'WILL_UPDATE AWS::IAM::Policy PolicyDocument',
    'WILL_UPDATE AWS::IAM::Policy PolicyDocument',
  ];
}

/**
 * From release 0.10.0 stage 1m's "time for stage 10m" alarm also says when to shard the database
 * instead: its description changes in place.
 */
const oneWriterAdvice = (stage: UserStage) =>
  stage === UserStage.USERS_1M ? ['WILL_UPDATE AWS::CloudWatch::CompositeAlarm AlarmDescription'] : [];

/**
 * From release 0.11.0 stage 10m's "at capacity" alarm also says to shard when the database's CPU signal
 * fired: its description changes in place.
 */
const tenMillionShardAdvice = (stage: UserStage) =>
  stage === UserStage.USERS_10M ? ['WILL_UPDATE AWS::CloudWatch::CompositeAlarm AlarmDescription'] : [];

/** Two lists of changes as one: a resource that both change counts once (the most either lists). */
function union(a: string[], b: string[]): string[] {
  const count = (list: string[], line: string) => list.filter((l) => l === line).length;
  return [...new Set([...a, ...b])].flatMap((line) =>
    Array<string>(Math.max(count(a, line), count(b, line))).fill(line),
  );
}

/** `<impact> <type> <changed properties>` for each resource a release's stack changes at its own stage. */
function sameStageChanges(release: string, stage: UserStage): string[] {
  const changed: string[] = [];
  fullDiff(
    withoutCdkPaths(releaseFixture(release, stage)),
    withoutCdkPaths(templates.get(stage)!),
  ).resources.forEachDifference((_id, change) => {
    changed.push(`${change.changeImpact} ${change.resourceType} ${Object.keys(change.propertyUpdates)}`);
  });
  return changed;
}

const hasSingleServer = (stage: UserStage) =>
  stage === UserStage.USERS_1 || stage === UserStage.USERS_10 || stage === UserStage.USERS_100;

interface Change {
  readonly type: string;
  readonly impact: string;
  readonly properties: string[];
}

/** The changes of an upgrade, looked up by resource type (or all of them, without one). */
function changesByType(from: UserStage, to: UserStage): (type?: string) => Change[] {
  const changes: Change[] = [];
  fullDiff(templates.get(from)!, templates.get(to)!).resources.forEachDifference((_id, change) => {
    changes.push({
      type: change.resourceType ?? '',
      impact: change.changeImpact,
      properties: Object.keys(change.propertyUpdates),
    });
  });
  return (type) => changes.filter((c) => type === undefined || c.type === type);
}

describe('upgrading one stage up in place', () => {
  test.each(pairs)('%s -> %s replaces and deletes no stateful resource', (from, to) => {
    expect(dataLossOnUpgrade(templates.get(from)!, templates.get(to)!)).toEqual([]);
  });

  test.each(pairs)(
    '%s -> %s never updates a CloudFront VPC origin in place (CloudFront refuses: 409)',
    (from, to) => {
      expect(vpcOriginsUpdatedInPlace(templates.get(from)!, templates.get(to)!)).toEqual([]);
    },
  );

  test('the check catches a VPC origin whose load balancer is replaced under it', () => {
    const before = templates.get(UserStage.USERS_1K)!;
    const after = structuredClone(before);
    const [lb] = Object.entries(after.Resources).find(
      ([, r]) => r.Type === 'AWS::ElasticLoadBalancingV2::LoadBalancer',
    )!;
    after.Resources[lb].Properties.Scheme = 'internet-facing';
    expect(vpcOriginsUpdatedInPlace(before, after)).toEqual([
      expect.stringMatching(
        new RegExp(`^CdnDistributionOrigin2VpcOrigin\\w+ points at ${lb}, which is replaced`),
      ),
    ]);
  });

  test('1 -> 10 keeps the server, its address and its data volume; only the user data changes', () => {
    const changes: Record<string, { impact: string; properties: string[] }> = {};
    fullDiff(
      templates.get(UserStage.USERS_1)!,
      templates.get(UserStage.USERS_10)!,
    ).resources.forEachDifference((id, change) => {
      changes[id] = { impact: change.changeImpact, properties: Object.keys(change.propertyUpdates) };
    });
    // UserData is "Some interruptions" for an EBS-backed instance (stop, update, start); the diff
    // engine says MAY_REPLACE because instance-store-backed instances would be replaced.
    const instance = Object.entries(changes).filter(([id]) => /^ServerInstance[0-9A-F]{8}$/.test(id));
    expect(instance).toEqual([
      [expect.any(String), { impact: ResourceImpact.MAY_REPLACE, properties: ['UserData'] }],
    ]);
    const untouched = Object.keys(changes).filter((id) =>
      /^Server(ElasticIp|DataVolume|Instance(LaunchTemplate|InstanceProfile))/.test(id),
    );
    expect(untouched).toEqual([]);
    const removed = Object.entries(changes)
      .filter(([, c]) => c.impact === ResourceImpact.WILL_DESTROY || c.impact === ResourceImpact.WILL_ORPHAN)
      .map(([id, c]) => `${c.impact} ${id.replace(/[0-9A-F]{8}$/, '')}`)
      .sort();
    // The retained secret and the rotation's retained log group are orphaned; the rotation goes.
    expect(removed).toEqual([
      'WILL_DESTROY ServerLocalDatabaseRotation',
      expect.stringMatching(/^WILL_DESTROY ServerLocalDatabaseRotationInvoke/),
      'WILL_DESTROY ServerLocalDatabaseRotationServiceRole',
      'WILL_DESTROY ServerLocalDatabaseRotationServiceRoleDefaultPolicy',
      'WILL_DESTROY ServerLocalDatabaseSecretPolicy',
      'WILL_DESTROY ServerLocalDatabaseSecretRotation',
      'WILL_ORPHAN ServerLocalDatabaseRotationLogs',
      'WILL_ORPHAN ServerLocalDatabaseSecret',
    ]);
  });
});

test('10 -> 100: the same distribution takes the web client in place; the server is not even restarted', () => {
  const changed: string[] = [];
  fullDiff(
    templates.get(UserStage.USERS_10)!,
    templates.get(UserStage.USERS_100)!,
  ).resources.forEachDifference((id, change) => {
    if (!change.isAddition) changed.push(`${id} ${change.changeImpact}`);
  });
  // The log bucket's policy also admits the new web bucket's access logs; the stage guard checks
  // the new stage (the diff engine knows no impact for a custom resource); the next-stage alarm gets
  // the name of the new next stage (a new alarm: alarm names cannot change, and it holds no data).
  expect(changed.sort()).toEqual([
    expect.stringMatching(/^CdnDistribution[0-9A-F]{8} WILL_UPDATE$/),
    expect.stringMatching(/^CdnLogBucketPolicy[0-9A-F]{8} WILL_UPDATE$/),
    expect.stringMatching(/^OperationsNextStage[0-9A-F]{8} WILL_REPLACE$/),
    expect.stringMatching(/^StageGuard[0-9A-F]{8} NO_CHANGE$/),
  ]);
});

test('100 -> 1k: the server goes, its data volume and backups stay; the database changes in place', () => {
  const byType = changesByType(UserStage.USERS_100, UserStage.USERS_1K);
  expect(byType('AWS::EC2::Volume')).toEqual([
    expect.objectContaining({ impact: ResourceImpact.WILL_ORPHAN }),
  ]);
  expect(byType('AWS::Backup::BackupVault')).toEqual([
    expect.objectContaining({ impact: ResourceImpact.WILL_ORPHAN }),
  ]);
  expect(byType('AWS::EC2::Instance')).toEqual([
    expect.objectContaining({ impact: ResourceImpact.WILL_DESTROY }),
  ]);
  expect(byType('AWS::RDS::DBInstance')).toEqual([
    expect.objectContaining({ properties: ['DBInstanceClass', 'MultiAZ'] }),
  ]);
  expect(byType('AWS::S3::Bucket')).toEqual([
    expect.objectContaining({ impact: ResourceImpact.WILL_CREATE }),
  ]);
  // The Secrets Manager endpoint grows into the second zone in place: the CloudFormation resource
  // schema the diff engine reads does not make SubnetIds create-only.
  expect(byType('AWS::EC2::VPCEndpoint')).toEqual(
    expect.arrayContaining([
      { type: 'AWS::EC2::VPCEndpoint', impact: ResourceImpact.WILL_UPDATE, properties: ['SubnetIds'] },
    ]),
  );
  // The subnets laid out at stage 1 change their tags only; the load balancer and its fleet get two
  // new subnets named by zone ID (StageNetwork.addVpcOriginSubnets).
  const subnets = byType('AWS::EC2::Subnet');
  expect(subnets.filter((c) => c.impact === ResourceImpact.WILL_CREATE)).toHaveLength(2);
  expect(
    subnets
      .filter((c) => c.impact !== ResourceImpact.WILL_CREATE)
      .every((c) => c.impact === ResourceImpact.WILL_UPDATE && c.properties.join() === 'Tags'),
  ).toBe(true);
});

test('1k -> 10k: the database grows in place, the distribution takes the media bucket in place', () => {
  const byType = changesByType(UserStage.USERS_1K, UserStage.USERS_10K);
  expect(byType('AWS::RDS::DBInstance')).toEqual([
    expect.objectContaining({ impact: ResourceImpact.WILL_UPDATE, properties: ['DBInstanceClass'] }),
  ]);
  expect(byType('AWS::S3::Bucket')).toEqual([
    expect.objectContaining({ impact: ResourceImpact.WILL_CREATE }),
  ]);
  expect(byType('AWS::CloudFront::Distribution')).toEqual([
    expect.objectContaining({ impact: ResourceImpact.WILL_UPDATE, properties: ['DistributionConfig'] }),
  ]);
  expect(byType('AWS::ElasticLoadBalancingV2::LoadBalancer')).toEqual([]);
  expect(byType().filter((c) => c.impact === ResourceImpact.WILL_DESTROY)).toEqual([]);
});

describe('10k -> 100k', () => {
  const from = templates.get(UserStage.USERS_10K)! as { Resources: Record<string, { Type: string }> };
  const idsOf = (type: string) =>
    Object.entries(from.Resources)
      .filter(([, r]) => r.Type === type)
      .map(([id]) => id);
  const changed = new Set<string>();
  const changes = new Map<string, Change>();
  fullDiff(from, templates.get(UserStage.USERS_100K)!).resources.forEachDifference((id, change) => {
    changed.add(id);
    changes.set(id, {
      type: change.resourceType ?? '',
      impact: change.changeImpact,
      properties: Object.keys(change.propertyUpdates),
    });
  });

  // Only DBInstanceClass changes: the primary's credentials, and so its secret, stay as they are.
  test('the primary database keeps its logical id and only grows a class, in place', () => {
    const [primary] = idsOf('AWS::RDS::DBInstance');
    expect(primary).toMatch(/^DatabaseInstance[0-9A-F]{8}$/);
    expect(changes.get(primary)).toEqual({
      type: 'AWS::RDS::DBInstance',
      impact: ResourceImpact.WILL_UPDATE,
      properties: ['DBInstanceClass'],
    });
  });

  test("its subnet group and parameter group, the stack's secrets and every bucket are untouched", () => {
    const kept = [
      ...idsOf('AWS::RDS::DBSubnetGroup'),
      ...idsOf('AWS::RDS::DBParameterGroup'),
      ...idsOf('AWS::S3::Bucket'),
      ...idsOf('AWS::SecretsManager::Secret'),
    ];
    expect(kept.length).toBeGreaterThanOrEqual(6);
    expect(kept.filter((id) => changed.has(id))).toEqual([]);
  });

  test('adds the cache, the replica and nothing stateful is removed', () => {
    const added = [...changes.values()]
      .filter((c) => c.impact === ResourceImpact.WILL_CREATE)
      .map((c) => c.type);
    expect(added).toEqual(
      expect.arrayContaining([
        'AWS::ElastiCache::ReplicationGroup',
        'AWS::RDS::DBInstance',
        'AWS::EC2::NatGateway',
      ]),
    );
    expect([...changes.values()].filter((c) => c.impact === ResourceImpact.WILL_DESTROY)).toEqual([]);
  });

  test('the check would catch a recreated primary (a ReplicatedDb that built a new database)', () => {
    const broken = structuredClone(templates.get(UserStage.USERS_100K)!) as {
      Resources: Record<string, unknown>;
    };
    const [primary] = idsOf('AWS::RDS::DBInstance');
    broken.Resources[`ReadReplicasPrimary${primary.slice(-8)}`] = broken.Resources[primary];
    delete broken.Resources[primary];
    expect(dataLossOnUpgrade(from, broken)).toEqual([
      expect.objectContaining({ logicalId: primary, impact: ResourceImpact.WILL_DESTROY }),
    ]);
  });
});

describe('the upgrade check itself', () => {
  test('flags a database that would be replaced (a create-only property changes)', () => {
    const renamed = synthStage(UserStage.USERS_10, {}).template.toJSON();
    const db = Object.values(
      renamed.Resources as Record<string, { Type: string; Properties: Record<string, unknown> }>,
    ).find((r) => r.Type === 'AWS::RDS::DBInstance')!;
    db.Properties.DBName = 'renamed';
    expect(dataLossOnUpgrade(templates.get(UserStage.USERS_10)!, renamed)).toEqual([
      expect.objectContaining({
        type: 'AWS::RDS::DBInstance',
        impact: ResourceImpact.WILL_REPLACE,
        properties: ['DBName'],
      }),
    ]);
  });

  test('flags a master username taken from the secret (MasterUsername is create-only)', () => {
    const fromSecret = structuredClone(templates.get(UserStage.USERS_10)!);
    const db = Object.values(fromSecret.Resources).find((r) => r.Type === 'AWS::RDS::DBInstance')!;
    db.Properties.MasterUsername = '{{resolve:secretsmanager:secret:SecretString:username::}}';
    expect(dataLossOnUpgrade(templates.get(UserStage.USERS_10)!, fromSecret)).toEqual([
      expect.objectContaining({ type: 'AWS::RDS::DBInstance', properties: ['MasterUsername'] }),
    ]);
  });

  test('flags a database that would be deleted (Snapshot is not Retain)', () => {
    expect(dataLossOnUpgrade(templates.get(UserStage.USERS_10)!, templates.get(UserStage.USERS_1)!)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: 'AWS::RDS::DBInstance', impact: ResourceImpact.WILL_DESTROY }),
      ]),
    );
  });

  test('lets a retained resource go (the stage-1 secret on 1 -> 10 is orphaned, not deleted)', () => {
    const removedSecrets: string[] = [];
    fullDiff(
      templates.get(UserStage.USERS_1)!,
      templates.get(UserStage.USERS_10)!,
    ).resources.forEachDifference((id, change) => {
      if (change.resourceType === 'AWS::SecretsManager::Secret' && change.isRemoval) removedSecrets.push(id);
    });
    expect(removedSecrets).toHaveLength(1);
    expect(dataLossOnUpgrade(templates.get(UserStage.USERS_1)!, templates.get(UserStage.USERS_10)!)).toEqual(
      [],
    );
  });
});

// The fixtures come from `cdk synth`, which adds aws:cdk:path metadata and the CDKMetadata resource
// that the tests' apps leave out; neither is a change to the app, so both are dropped before the diff.
function withoutMetadata(template: Template): Template {
  return {
    Resources: Object.fromEntries(
      Object.entries(template.Resources)
        .filter(([, { Type }]) => Type !== 'AWS::CDK::Metadata')
        .map(([id, { Metadata: _, ...resource }]) => [id, resource]),
    ) as Template['Resources'],
  };
}

/**
 * A template without the CDK's construct paths and asset paths in its resources' metadata (they move with
 * refactors and synth directories and deploy nothing), keeping what CloudFormation acts on, such as a
 * single server's release.
 */
function withoutCdkPaths(template: Template): Template {
  return {
    Resources: Object.fromEntries(
      Object.entries(template.Resources)
        .filter(([, { Type }]) => Type !== 'AWS::CDK::Metadata')
        .map(([id, { Metadata, ...resource }]) => {
          const kept = Object.entries(Metadata ?? {}).filter(([key]) => !/^aws:(cdk|asset):/.test(key));
          return [id, kept.length > 0 ? { ...resource, Metadata: Object.fromEntries(kept) } : resource];
        }),
    ) as Template['Resources'],
  };
}

// Every resource but the VPC origins depends on the stage guard from release 0.4.0: a DependsOn
// orders the update and changes no property, so tests that look at property changes drop it.
function withoutGuardDependencies(template: Template): Template {
  return {
    Resources: Object.fromEntries(
      Object.entries(template.Resources).map(([id, { DependsOn, ...resource }]) => {
        const kept = DependsOn?.filter((dependency) => !dependency.startsWith('StageGuard'));
        return [id, kept?.length ? { ...resource, DependsOn: kept } : resource];
      }),
    ) as Template['Resources'],
  };
}

describe('upgrading stacks deployed from release 0.1.0 (RDS-managed master password)', () => {
  const fixture = (stage: UserStage) => releaseFixture('0.1.0', stage);
  upgradesFromRelease('0.1.0');
  const withDatabase = releaseStages('0.1.0').filter((stage) => stage !== UserStage.USERS_1);

  test.each(withDatabase)(
    '%s: the database turns RDS password management off and log exports on in place, and takes the stack-generated secret',
    (stage) => {
      const database = (t: Template) =>
        Object.entries(t.Resources).find(
          ([, r]) => r.Type === 'AWS::RDS::DBInstance' && !r.Properties.SourceDBInstanceIdentifier,
        )!;
      const [oldId, oldDb] = database(fixture(stage));
      const [newId, newDb] = database(templates.get(stage)!);
      expect(newId).toBe(oldId);
      expect(oldDb.Properties.ManageMasterUserPassword).toBe(true);
      expect(newDb.Properties).toMatchObject({ ManageMasterUserPassword: false, MasterUsername: 'postgres' });
      expect(JSON.stringify(newDb.Properties.MasterUserPassword)).toMatch(
        /resolve:secretsmanager:.*SecretString:password/,
      );
      const changes: Record<string, string | undefined> = {};
      fullDiff(fixture(stage), templates.get(stage)!).resources.forEachDifference((id, change) => {
        if (id !== oldId) return;
        for (const [property, update] of Object.entries(change.propertyUpdates))
          changes[property] = update.changeImpact;
        changes.resource = change.changeImpact;
      });
      expect(changes).toEqual({
        resource: ResourceImpact.WILL_UPDATE,
        ManageMasterUserPassword: ResourceImpact.WILL_UPDATE,
        MasterUserPassword: ResourceImpact.WILL_UPDATE,
        EnableCloudwatchLogsExports: ResourceImpact.WILL_UPDATE,
      });
    },
  );

  test.each(withDatabase)(
    "%s: the app's DATABASE_SECRET_ARN moves from the RDS-managed secret to the new one",
    (stage) => {
      const appTier = (t: Template) =>
        JSON.stringify(
          Object.values(t.Resources).filter(
            (r) => r.Type === 'AWS::EC2::Instance' || r.Type === 'AWS::EC2::LaunchTemplate',
          ),
        );
      expect(appTier(fixture(stage))).toContain('MasterUserSecret.SecretArn');
      const now = appTier(templates.get(stage)!);
      expect(now).not.toContain('MasterUserSecret.SecretArn');
      expect(now).toMatch(/DATABASE_SECRET_ARN='?",\{"Ref":"DatabaseInstanceSecretAttachment[0-9A-F]{8}"\}/);
    },
  );
});

describe('upgrading stacks deployed from release 0.2.0 (server open to the world, internet-facing load balancer)', () => {
  const fixture = (stage: UserStage) => releaseFixture('0.2.0', stage);
  upgradesFromRelease('0.2.0');
  const changesFrom = (stage: UserStage) => {
    const changes = new Map<string, Change>();
    fullDiff(
      withoutMetadata(fixture(stage)),
      withoutGuardDependencies(templates.get(stage)!),
    ).resources.forEachDifference((id, change) => {
      changes.set(id, {
        type: change.resourceType ?? '',
        impact: change.changeImpact,
        properties: Object.keys(change.propertyUpdates),
      });
    });
    return changes;
  };
  const withServer = [UserStage.USERS_1, UserStage.USERS_10, UserStage.USERS_100];
  const withFleet = releaseStages('0.2.0').filter((stage) => !withServer.includes(stage));

  test.each(withServer)(
    '%s: the server is kept (new user data: a stop and start), with its address, data volume and attachment; its open rules go',
    (stage) => {
      const changes = changesFrom(stage);
      const server = [...changes.keys()].filter((id) =>
        /^Server(Instance|ElasticIp|DataVolume|DataVolumeAttachment|SecurityGroup)[0-9A-F]{8}$/.test(id),
      );
      // UserData is "Some interruptions" for an EBS-backed instance (stop, update, start); the diff
      // engine says MAY_REPLACE because instance-store-backed instances would be replaced. It
      // changes because the demo app now reads the cache token again after a rotation.
      expect(server.sort().map((id) => [id, changes.get(id)])).toEqual([
        [
          expect.stringMatching(/^ServerInstance/),
          expect.objectContaining({ impact: ResourceImpact.MAY_REPLACE, properties: ['UserData'] }),
        ],
        [
          expect.stringMatching(/^ServerSecurityGroup/),
          expect.objectContaining({
            impact: ResourceImpact.WILL_UPDATE,
            properties: ['SecurityGroupIngress'],
          }),
        ],
      ]);
      const opened = Object.values(fixture(stage).Resources).flatMap(
        (r) => (r.Properties.SecurityGroupIngress as Array<{ CidrIp?: string }> | undefined) ?? [],
      );
      expect(opened.filter((rule) => rule.CidrIp === '0.0.0.0/0')).not.toEqual([]);
    },
  );

  test.each(withFleet)(
    '%s: the load balancer is replaced by an internal one (it holds no data); CloudFront gets a VPC origin',
    (stage) => {
      const changes = changesFrom(stage);
      const byType = (type: string) => [...changes.values()].filter((c) => c.type === type);
      expect(byType('AWS::ElasticLoadBalancingV2::LoadBalancer')).toEqual([
        expect.objectContaining({
          impact: ResourceImpact.WILL_REPLACE,
          properties: ['LoadBalancerAttributes', 'Scheme', 'Subnets'],
        }),
      ]);
      expect(byType('AWS::CloudFront::VpcOrigin')).toEqual([
        expect.objectContaining({ impact: ResourceImpact.WILL_CREATE }),
      ]);
      expect(byType('AWS::CloudFront::Distribution')).toEqual([
        expect.objectContaining({ impact: ResourceImpact.WILL_UPDATE }),
      ]);
      // The fleet is not replaced; it moves to the load balancer's new subnets and starts
      // collecting the group metrics the operations read.
      expect(byType('AWS::AutoScaling::AutoScalingGroup')).toEqual([
        expect.objectContaining({
          impact: ResourceImpact.WILL_UPDATE,
          properties: ['VPCZoneIdentifier', 'MetricsCollection'],
        }),
      ]);
    },
  );

  test.each([UserStage.USERS_10K, UserStage.USERS_100K])(
    '%s: the origin-verify header secret is left behind (retained), no longer used',
    (stage) => {
      const secrets = [...changesFrom(stage).entries()].filter(([id]) => /^WebOriginHeaderSecret/.test(id));
      expect(secrets).toEqual([
        [expect.any(String), expect.objectContaining({ impact: ResourceImpact.WILL_ORPHAN })],
      ]);
    },
  );
});

describe('upgrading stacks deployed from release 0.3.0 (no stage guard, no uploads)', () => {
  upgradesFromRelease('0.3.0');

  test.each(releaseStages('0.3.0'))(
    '%s, same stage: the stage guard, its provider and the operations are added; servers only get new user data',
    (stage) => {
      const changed: string[] = [];
      fullDiff(
        withoutMetadata(releaseFixture('0.3.0', stage)),
        withoutGuardDependencies(templates.get(stage)!),
      ).resources.forEachDifference((id, change) => {
        // Every stage gains its operations (alarm topic, dashboard, alarms): new resources only.
        if (id.startsWith('Operations') && change.isAddition) return;
        changed.push(`${change.changeImpact} ${change.resourceType} ${Object.keys(change.propertyUpdates)}`);
      });
      // The demo app learned direct uploads (stage 1m), so its servers' user data changed: the
      // single server is stopped and started, the fleet rolls one server at a time.
      const userData = union(releasesInPlace(stage), [
        ...(hasSingleServer(stage) ? [] : ['WILL_UPDATE AWS::EC2::LaunchTemplate LaunchTemplateData']),
        ...(hasSingleServer(stage)
          ? []
          : movedToVpcOriginZones(
              'WILL_UPDATE AWS::AutoScaling::AutoScalingGroup VPCZoneIdentifier,MetricsCollection',
            )),
      ]);
      // Deploys of the web client (from stage 100) leave the pre-rendered pages alone, and wait for
      // their handler's log group (one change of the resource, listed here).
      if (stage !== UserStage.USERS_1 && stage !== UserStage.USERS_10) {
        userData.push('WILL_UPDATE Custom::CDKBucketDeployment Exclude');
      }
      expect(changed.sort()).toEqual(
        [
          'WILL_CREATE AWS::IAM::Role ',
          'WILL_CREATE AWS::Lambda::Function ',
          'WILL_CREATE Custom::StageGuard ',
          ...userData,
          ...waitForHandlerLogGroups(stage).filter((c) => !c.includes('CDKBucketDeployment')),
        ].sort(),
      );
    },
  );
});

describe('upgrading stacks deployed from release 0.4.0 (stages 1 to 1m)', () => {
  upgradesFromRelease('0.4.0');

  test.each(releaseStages('0.4.0'))(
    '%s, same stage: the guard learns stage 10m, the servers get the new demo app, 1m advises 10m',
    (stage) => {
      const changed = sameStageChanges('0.4.0', stage);
      // The demo app asks whether its database is a replica (stage 10m), so the servers' user data
      // changed: the single server is stopped and started, the fleet rolls one server at a time.
      const userData = union(union(releasesInPlace(stage), storeJoins(stage)), [
        ...(hasSingleServer(stage) ? [] : ['WILL_UPDATE AWS::EC2::LaunchTemplate LaunchTemplateData']),
        ...(hasSingleServer(stage)
          ? []
          : movedToVpcOriginZones('WILL_UPDATE AWS::AutoScaling::AutoScalingGroup VPCZoneIdentifier')),
      ]);
      // At 1m the "at capacity" alarm becomes "time for stage 10m": a new name, so a new alarm.
      const advice =
        stage === UserStage.USERS_1M
          ? ['WILL_REPLACE AWS::CloudWatch::CompositeAlarm AlarmDescription,AlarmName']
          : [];
      // The guard's new property (the marker of 10m) reaches its handler as an Update, which it allows.
      expect(changed.sort()).toEqual(
        [
          'NO_CHANGE Custom::StageGuard Markers',
          ...userData,
          ...advice,
          ...waitForHandlerLogGroups(stage),
        ].sort(),
      );
    },
  );
});

describe('upgrading stacks deployed from release 0.5.0 (stages 1 to 10m)', () => {
  upgradesFromRelease('0.5.0');

  test.each(releaseStages('0.5.0'))(
    '%s, same stage: from 1k the load balancer and its fleet move to subnets named by zone ID; the app becomes a release',
    (stage) => {
      const changed = sameStageChanges('0.5.0', stage);
      const moved = hasSingleServer(stage)
        ? []
        : movedToVpcOriginZones('WILL_UPDATE AWS::AutoScaling::AutoScalingGroup VPCZoneIdentifier');
      expect(changed.sort()).toEqual(
        [
          ...moved,
          ...waitForHandlerLogGroups(stage),
          ...union(releasesInPlace(stage), storeJoins(stage)),
          ...oneWriterAdvice(stage),
          ...tenMillionShardAdvice(stage),
        ].sort(),
      );
    },
  );
});

describe('upgrading stacks deployed from release 0.7.0 (stages 1 to 10m)', () => {
  upgradesFromRelease('0.7.0');

  test.each(releaseStages('0.7.0'))(
    '%s, same stage: up to 100 the app becomes a release in place; from 1k the fleet bakes each release',
    (stage) => {
      // The bake lengthens the fleet's signal timeout: its UpdatePolicy and CreationPolicy, no property.
      const group = hasSingleServer(stage) ? [] : ['WILL_UPDATE AWS::AutoScaling::AutoScalingGroup '];
      expect(sameStageChanges('0.7.0', stage).sort()).toEqual(
        [
          ...union(releasesInPlace(stage), storeJoins(stage)),
          ...group,
          ...oneWriterAdvice(stage),
          ...tenMillionShardAdvice(stage),
        ].sort(),
      );
    },
  );
});

/**
 * What a new demo app does to a stack of release 0.8.0 or later: up to stage 100 the server gets it as a
 * new release (its metadata changes, no restart; the release's wait condition and handle replace the old
 * ones); from 1k the fleets roll (their launch templates change). From 0.10.0 the demo ships as an S3
 * asset, which each server's role may read (s3:GetObject on that one object).
 */
function newDemoApp(stage: UserStage): string[] {
  const release = [
    'WILL_UPDATE AWS::EC2::Instance ',
    'WILL_CREATE AWS::CloudFormation::WaitCondition ',
    'WILL_CREATE AWS::CloudFormation::WaitConditionHandle ',
    'WILL_DESTROY AWS::CloudFormation::WaitCondition ',
    'WILL_DESTROY AWS::CloudFormation::WaitConditionHandle ',
  ];
  const fleets = atLeast(stage, UserStage.USERS_1M) ? 2 : 1;
  const rolling = Array<string>(fleets).fill('WILL_UPDATE AWS::EC2::LaunchTemplate LaunchTemplateData');
  return hasSingleServer(stage) ? release : rolling;
}

/** The asset grant of each server role (one single server, or the fleet and from 1m the workers). */
const assetGrants = (stage: UserStage) =>
  Array<string>(hasSingleServer(stage) ? 1 : atLeast(stage, UserStage.USERS_1M) ? 2 : 1).fill(
    'WILL_UPDATE AWS::IAM::Policy PolicyDocument',
  );

describe('upgrading stacks deployed from release 0.8.0 (stages 1 to 10m)', () => {
  upgradesFromRelease('0.8.0');

  test.each(releaseStages('0.8.0'))(
    '%s, same stage: the new demo app is a release in place (up to 100) or a rolling update; 1m and 10m gain the store',
    (stage) => {
      expect(sameStageChanges('0.8.0', stage).sort()).toEqual(
        [
          ...newDemoApp(stage),
          ...union(assetGrants(stage), storeJoins(stage)),
          ...oneWriterAdvice(stage),
          ...tenMillionShardAdvice(stage),
        ].sort(),
      );
    },
  );
});

describe('upgrading stacks deployed from release 0.9.0 (stages 1 to 10m)', () => {
  upgradesFromRelease('0.9.0');

  test.each(releaseStages('0.9.0'))(
    '%s, same stage: the demo app comes from an S3 asset; 1m says when to shard',
    (stage) => {
      expect(sameStageChanges('0.9.0', stage).sort()).toEqual(
        [
          ...newDemoApp(stage),
          ...assetGrants(stage),
          ...oneWriterAdvice(stage),
          ...tenMillionShardAdvice(stage),
        ].sort(),
      );
    },
  );
});

describe('upgrading stacks deployed from release 0.10.0 (stages 1 to 10m)', () => {
  upgradesFromRelease('0.10.0');

  test.each(releaseStages('0.10.0'))(
    '%s, same stage: the demo app (with its realtime service) is a new release; 10m says when to shard',
    (stage) => {
      expect(sameStageChanges('0.10.0', stage).sort()).toEqual(
        [...newDemoApp(stage), ...assetGrants(stage), ...tenMillionShardAdvice(stage)].sort(),
      );
    },
  );
});
