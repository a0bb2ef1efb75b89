import { App, Token } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import {
  MultiRegion,
  SecondaryRegionStack,
  StageStack,
  StageStacks,
  StageStacksProps,
  UserStage,
} from '../../lib';
import { routingCode } from '../../lib/stages/regional-routing';
import { monthlyCost, templateOf } from '../../lib/private/cost-model';
import { newApp, synthStage } from '../helpers';

// Stage 10m in three regions, synthesized once for the file.
const app = newApp();
const multi = new MultiRegion(app, 'Shop', {
  stage: UserStage.USERS_10M,
  regions: ['eu-west-1', 'us-east-1', 'ap-northeast-1'],
});
const primary = Template.fromStack(multi.primary);
const secondaries = new Map(multi.secondaries.map((s) => [s.region, Template.fromStack(s)]));
const output = (stack: string, name: string, region: string) => ({
  'Fn::GetStackOutput': { StackName: stack, OutputName: name, Region: region },
});

describe('MultiRegion stacks', () => {
  test('the primary keeps the app name; each other region gets <name>-<region> with its region pinned', () => {
    expect(multi.primary.stackName).toBe('Shop');
    expect(multi.edge!.stackName).toBe('Shop-Edge');
    expect(multi.secondaries.map((s) => [s.stackName, s.region, s.primaryRegion])).toEqual([
      ['Shop-us-east-1', 'us-east-1', 'eu-west-1'],
      ['Shop-ap-northeast-1', 'ap-northeast-1', 'eu-west-1'],
    ]);
    expect(multi.regions).toEqual(['eu-west-1', 'us-east-1', 'ap-northeast-1']);
  });

  test('the primary deploys after the edge stack and every secondary region, whose outputs it reads', () => {
    expect(multi.primary.dependencies.map((s) => s.stackName).sort()).toEqual(
      ['Shop-Edge', 'Shop-ap-northeast-1', 'Shop-us-east-1'].sort(),
    );
    for (const s of multi.secondaries) expect(s.dependencies).toEqual([]);
  });

  test('each secondary network has its own address range, so that the networks could be peered', () => {
    expect(
      [...secondaries.values()].map(
        (t) => Object.values(t.findResources('AWS::EC2::VPC'))[0].Properties.CidrBlock,
      ),
    ).toEqual(['10.1.0.0/16', '10.2.0.0/16']);
  });

  test('StageStacks builds stage 10m through MultiRegion, with us-east-1 and us-west-2 by default', () => {
    const stacks = new StageStacks(newApp(), 'ScaleStages', { stage: UserStage.USERS_10M });
    expect(stacks.secondaries.map((s) => [s.region, s.primaryRegion])).toEqual([['us-west-2', 'us-east-1']]);
  });

  test('the secondary regions fix their region only, so synth looks nothing up, even with an account', () => {
    const m = new MultiRegion(newApp(), 'Shop', {
      stage: UserStage.USERS_10M,
      env: { account: '123456789012' },
    });
    expect(Token.isUnresolved(m.secondaries[0].account)).toBe(true);
    expect(m.secondaries[0].region).toBe('us-west-2');
    expect(m.primary.account).toBe('123456789012');
  });

  test('the estimate adds up every stack', () => {
    expect(multi.estimatedMonthlyCost()).toBeCloseTo(
      monthlyCost(templateOf(multi.primary), templateOf(multi.edge!), ...multi.secondaries.map(templateOf)),
      6,
    );
    for (const s of multi.secondaries) expect(s.estimatedMonthlyCost()).toBeGreaterThan(500);
  });
});

describe('the alarmEmail context key', () => {
  test('subscribes the address to the alarms of every region, not the primary alone', () => {
    const withEmail = newApp();
    withEmail.node.setContext('alarmEmail', 'ops@example.com');
    const stacks = new MultiRegion(withEmail, 'Shop', { stage: UserStage.USERS_10M });
    for (const stack of [stacks.primary, ...stacks.secondaries]) {
      Template.fromStack(stack).hasResourceProperties('AWS::SNS::Subscription', {
        Protocol: 'email',
        Endpoint: 'ops@example.com',
      });
    }
  });
});

describe.each(['us-east-1', 'ap-northeast-1'])('secondary region %s', (region) => {
  const template = () => secondaries.get(region)!;

  test('a cross-region replica of the primary database, named by the ARN the primary output gives', () => {
    template().resourceCountIs('AWS::RDS::DBInstance', 1);
    template().hasResourceProperties('AWS::RDS::DBInstance', {
      SourceRegion: 'eu-west-1',
      SourceDBInstanceIdentifier: {
        'Fn::Join': [
          '',
          Match.arrayWith([
            ':rds:eu-west-1:',
            { 'Fn::GetAtt': [Match.stringLikeRegexp('^PrimaryDatabaseInstanceIdentifier'), 'Value'] },
          ]),
        ],
      },
      DBInstanceClass: 'db.m7g.xlarge',
    });
  });

  test("reads the primary's outputs whole, each once, into a parameter (Fn::GetStackOutput as a direct value)", () => {
    for (const name of ['DatabaseInstanceIdentifier', 'DatabaseSecretNameWithSuffix', 'DistributionId']) {
      template().hasResourceProperties('AWS::SSM::Parameter', {
        Type: 'String',
        Value: output('Shop', name, 'eu-west-1'),
      });
    }
    expect(JSON.stringify(template().toJSON()).match(/Fn::GetStackOutput/g)).toHaveLength(3);
  });

  test('its own fleet, cache, queue and workers', () => {
    template().resourceCountIs('AWS::ElasticLoadBalancingV2::LoadBalancer', 1);
    template().hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', { Scheme: 'internal' });
    template().resourceCountIs('AWS::AutoScaling::AutoScalingGroup', 2);
    template().hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', { MinSize: '2', MaxSize: '40' });
    template().hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', { MinSize: '0', MaxSize: '20' });
    template().hasResourceProperties('AWS::ElastiCache::ReplicationGroup', {
      CacheNodeType: 'cache.m7g.large',
      NumCacheClusters: 2,
      TransitEncryptionEnabled: true,
      AtRestEncryptionEnabled: true,
    });
    template().resourceCountIs('AWS::SQS::Queue', 2);
    template().resourceCountIs('AWS::EC2::NatGateway', 2);
  });

  test('the app reads in its region and knows where writes go', () => {
    const userData = JSON.stringify(template().findResources('AWS::EC2::LaunchTemplate'));
    for (const name of [
      'DATABASE_HOST',
      'DATABASE_READER_HOSTS',
      'DATABASE_SECRET_ARN',
      'CACHE_HOST',
      'MEDIA_BUCKET',
      'JOB_QUEUE_URL',
    ]) {
      expect(userData).toContain(name);
    }
    expect(userData).toContain('WRITER_REGION=eu-west-1');
    // The replica secret: the primary secret's name in an ARN of this region.
    expect(userData).toMatch(
      new RegExp(
        `:secretsmanager:${region}:",\\{"Ref":"AWS::AccountId"\\},":secret:",\\{"Fn::GetAtt":\\["PrimaryDatabaseSecretNameWithSuffix[0-9A-F]{8}","Value"\\]\\}`,
      ),
    );
  });

  test("its media copy is readable by the primary's distribution only, named by its ARN", () => {
    template().hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Principal: { Service: 'cloudfront.amazonaws.com' },
            Condition: {
              StringEquals: {
                'AWS:SourceArn': {
                  'Fn::Join': [
                    '',
                    Match.arrayWith([
                      ':distribution/',
                      { 'Fn::GetAtt': [Match.stringLikeRegexp('^PrimaryDistributionId'), 'Value'] },
                    ]),
                  ],
                },
              },
            },
          }),
        ]),
      },
    });
  });

  test('a versioned, retained media bucket for the primary to replicate into', () => {
    const [, bucket] = Object.entries(template().findResources('AWS::S3::Bucket')).find(([id]) =>
      id.startsWith('MediaBucket'),
    )!;
    expect(bucket.Properties.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(bucket.DeletionPolicy).toBe('Retain');
  });

  test('the outputs the primary reads, under stable names', () => {
    const outputs = Object.keys(template().toJSON().Outputs);
    expect(outputs).toEqual(
      expect.arrayContaining([
        SecondaryRegionStack.LOAD_BALANCER_ARN_OUTPUT,
        SecondaryRegionStack.LOAD_BALANCER_DNS_NAME_OUTPUT,
        SecondaryRegionStack.LOAD_BALANCER_SECURITY_GROUP_OUTPUT,
        SecondaryRegionStack.MEDIA_BUCKET_NAME_OUTPUT,
        'DatabaseReplicaId',
      ]),
    );
  });

  test('its own alarms: replica lag, fleet, cache, queue, and capacity advice instead of a next stage', () => {
    template().hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'ReplicaLag', Threshold: 300 });
    template().hasResourceProperties('AWS::CloudWatch::CompositeAlarm', {
      AlarmName: `Shop-${region}-stage-10m-at-capacity`,
      AlarmDescription: Match.stringLikeRegexp(`^Region ${region} of stage 10m is at capacity`),
    });
  });
});

describe('the primary region at stage 10m', () => {
  test('outputs whole the values its regions read, from stage 10 on', () => {
    for (const t of [primary, synthStage(UserStage.USERS_10).template]) {
      t.hasOutput(SecondaryRegionStack.PRIMARY_DATABASE_IDENTIFIER_OUTPUT, {
        Value: { Ref: Match.stringLikeRegexp('^DatabaseInstance') },
      });
      t.hasOutput(SecondaryRegionStack.PRIMARY_DATABASE_SECRET_NAME_OUTPUT, {
        Value: {
          'Fn::Select': [
            6,
            { 'Fn::Split': [':', { Ref: Match.stringLikeRegexp('^DatabaseInstanceSecretAttachment') }] },
          ],
        },
      });
    }
  });

  test('replicates the database secret into every secondary region', () => {
    primary.hasResourceProperties('AWS::SecretsManager::Secret', {
      ReplicaRegions: [{ Region: 'us-east-1' }, { Region: 'ap-northeast-1' }],
    });
  });

  test('replicates media/ (deletions too) into each secondary media bucket, with a role S3 assumes', () => {
    primary.hasResourceProperties('AWS::S3::Bucket', {
      VersioningConfiguration: { Status: 'Enabled' },
      ReplicationConfiguration: {
        Role: { 'Fn::GetAtt': [Match.stringLikeRegexp('^CdnMediaReplicationRole'), 'Arn'] },
        Rules: ['us-east-1', 'ap-northeast-1'].map((region, i) => ({
          Id: `media-to-${i + 1}`,
          Priority: i + 1,
          Status: 'Enabled',
          Filter: { Prefix: 'media/' },
          DeleteMarkerReplication: { Status: 'Enabled' },
          Destination: {
            Bucket: {
              'Fn::Join': [
                '',
                [
                  'arn:',
                  { Ref: 'AWS::Partition' },
                  ':s3:::',
                  output(`Shop-${region}`, 'MediaBucketName', region),
                ],
              ],
            },
          },
        })),
      },
    });
    primary.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: Match.objectLike({
        Statement: [Match.objectLike({ Principal: { Service: 's3.amazonaws.com' } })],
      }),
    });
  });

  test("a VPC origin for each secondary region's load balancer, from that stack's outputs", () => {
    for (const region of ['us-east-1', 'ap-northeast-1']) {
      primary.hasResourceProperties('AWS::CloudFront::VpcOrigin', {
        VpcOriginEndpointConfig: Match.objectLike({
          Arn: output(`Shop-${region}`, 'LoadBalancerArn', region),
          Name: `Shop-${region}`,
          OriginProtocolPolicy: 'http-only',
        }),
      });
    }
    primary.resourceCountIs('AWS::CloudFront::VpcOrigin', 3);
  });

  test("media reads fail over to the first secondary region's copy: an origin group of the two buckets", () => {
    const config = Object.values(primary.findResources('AWS::CloudFront::Distribution'))[0].Properties
      .DistributionConfig;
    const media = config.CacheBehaviors.find((b: { PathPattern: string }) => b.PathPattern === '/media/*');
    const group = config.OriginGroups.Items.find((g: { Id: string }) => g.Id === media.TargetOriginId);
    expect(group.FailoverCriteria.StatusCodes.Items).toEqual([500, 502, 503, 504]);
    const [own, fallback] = group.Members.Items.map((m: { OriginId: string }) =>
      config.Origins.find((o: { Id: string }) => o.Id === m.OriginId),
    );
    expect(own.DomainName).toEqual({
      'Fn::GetAtt': [expect.stringMatching(/^CdnMediaBucket/), 'RegionalDomainName'],
    });
    expect(fallback.DomainName).toEqual({
      'Fn::Join': [
        '',
        [output('Shop-us-east-1', 'MediaBucketName', 'us-east-1'), '.s3.us-east-1.amazonaws.com'],
      ],
    });
    expect(fallback.OriginAccessControlId).toBeDefined();
    // Writes never reach a group: the behavior allows only GET and HEAD.
    expect(media.AllowedMethods ?? ['GET', 'HEAD']).toEqual(['GET', 'HEAD']);
  });

  test('the API and each region pinned under /_region/ run the routing function; origins are app-<region>', () => {
    const config = Object.values(primary.findResources('AWS::CloudFront::Distribution'))[0].Properties
      .DistributionConfig;
    expect(
      config.Origins.map((o: { Id: string }) => o.Id).filter((id: string) => id.startsWith('app-')),
    ).toEqual(['app-eu-west-1', 'app-us-east-1', 'app-ap-northeast-1']);
    const behaviors = config.CacheBehaviors.map(
      (b: { PathPattern: string; TargetOriginId: string; FunctionAssociations?: unknown[] }) => [
        b.PathPattern,
        b.TargetOriginId,
        b.FunctionAssociations?.length ?? 0,
      ],
    );
    expect(behaviors).toEqual([
      ['/api/*', 'app-eu-west-1', 1],
      ['/media/*', expect.any(String), 0],
      ['/_region/eu-west-1/*', 'app-eu-west-1', 1],
      ['/_region/us-east-1/*', 'app-us-east-1', 1],
      ['/_region/ap-northeast-1/*', 'app-ap-northeast-1', 1],
    ]);
  });

  test('the routing function carries these regions, reads the key value store, and the store is an output', () => {
    primary.hasResourceProperties('AWS::CloudFront::Function', {
      FunctionCode: routingCode(['eu-west-1', 'us-east-1', 'ap-northeast-1']),
      FunctionConfig: {
        Runtime: 'cloudfront-js-2.0',
        Comment: Match.anyValue(),
        KeyValueStoreAssociations: [
          { KeyValueStoreARN: { 'Fn::GetAtt': [Match.stringLikeRegexp('^CdnRouting'), 'Arn'] } },
        ],
      },
    });
    primary.hasOutput('RoutingStoreArn', {
      Value: { 'Fn::GetAtt': [Match.stringLikeRegexp('^CdnRouting'), 'Arn'] },
    });
  });

  test('says it is the last stage: capacity advice instead of a next stage', () => {
    primary.hasResourceProperties('AWS::CloudWatch::CompositeAlarm', {
      AlarmName: 'Shop-stage-10m-at-capacity',
      AlarmDescription: Match.stringLikeRegexp(
        'it is the last stage of the playbook.*add a region to the regions context key',
      ),
    });
  });

  test('a consumer of the library can give the load balancers HTTPS names in every region', () => {
    const app = newApp();
    const eu = new SecondaryRegionStack(app, 'Shop-eu-west-1', {
      region: 'eu-west-1',
      primaryStackName: 'Shop',
      primaryRegion: 'us-east-1',
      loadBalancerCertificate: {
        certificateArn: 'arn:aws:acm:eu-west-1:123456789012:certificate/abc',
      } as never,
      loadBalancerDomainName: 'eu.internal.example.com',
    });
    const shop = new StageStack(app, 'Shop', { stage: UserStage.USERS_10M, secondaryRegions: [eu] });
    Template.fromStack(shop).hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({
        Origins: Match.arrayWith([
          Match.objectLike({ Id: 'app-eu-west-1', DomainName: 'eu.internal.example.com' }),
        ]),
      }),
    });
    Template.fromStack(shop).hasResourceProperties('AWS::CloudFront::VpcOrigin', {
      VpcOriginEndpointConfig: Match.objectLike({
        Name: 'Shop-eu-west-1',
        OriginProtocolPolicy: 'https-only',
      }),
    });
  });
});

describe('writerRegion: the stack change after a promotion', () => {
  const promoted = (context: Record<string, string> = {}, props: Partial<StageStacksProps> = {}) => {
    const app = newApp();
    for (const [key, value] of Object.entries(context)) app.node.setContext(key, value);
    return new MultiRegion(app, 'Shop', {
      stage: UserStage.USERS_10M,
      regions: ['us-east-1', 'eu-west-1'],
      ...props,
    });
  };
  const functionCode = (m: MultiRegion) =>
    Object.values(Template.fromStack(m.primary).findResources('AWS::CloudFront::Function'))
      .map((r) => r.Properties.FunctionCode as string)
      .find((code) => code.includes('selectRequestOriginById'))!;

  test.each([
    ['the prop', {}, { writerRegion: 'eu-west-1' }],
    ['the context key', { writerRegion: 'eu-west-1' }, {}],
  ])(
    'from %s: the routing sends every request to it, and its app knows it writes',
    (_from, context, props) => {
      const m = promoted(context, props);
      expect(functionCode(m)).toBe(routingCode(['us-east-1', 'eu-west-1'], 'eu-west-1'));
      const userData = JSON.stringify(
        Template.fromStack(m.secondaries[0]).findResources('AWS::EC2::LaunchTemplate'),
      );
      expect(userData).toContain('WRITER_REGION=eu-west-1');
    },
  );

  test('changes no stateful resource of either stack', () => {
    const before = promoted();
    const after = promoted({}, { writerRegion: 'eu-west-1' });
    const stateful = [
      'AWS::RDS::DBInstance',
      'AWS::S3::Bucket',
      'AWS::SecretsManager::Secret',
      'AWS::ElastiCache::ReplicationGroup',
    ];
    for (const [a, b] of [
      [before.primary, after.primary],
      [before.secondaries[0], after.secondaries[0]],
    ]) {
      for (const type of stateful) {
        expect(Template.fromStack(b).findResources(type)).toEqual(Template.fromStack(a).findResources(type));
      }
    }
  });

  test('a region the app does not run in fails with the choices', () => {
    expect(() => promoted({}, { writerRegion: 'ap-south-1' })).toThrow(
      "writerRegion (prop or context key) must be one of the app's regions, us-east-1, eu-west-1; got 'ap-south-1'.",
    );
  });
});

describe('stage 10m input', () => {
  const props = (extra: Partial<StageStacksProps> = {}): StageStacksProps => ({
    stage: UserStage.USERS_10M,
    ...extra,
  });
  const secondary = (
    app: App,
    region = 'eu-west-1',
    primaryStackName = 'Shop',
    primaryRegion = 'us-east-1',
  ) =>
    new SecondaryRegionStack(app, `${primaryStackName}-${region}`, {
      region,
      primaryStackName,
      primaryRegion,
    });

  test.each<[string, () => unknown, string | RegExp]>([
    [
      'MultiRegion at stage 1m',
      () => new MultiRegion(newApp(), 'Shop', { stage: UserStage.USERS_1M }),
      "MultiRegion builds stage '10m'; got stage '1m'.",
    ],
    [
      'one region',
      () => new MultiRegion(newApp(), 'Shop', props({ regions: ['us-east-1'] })),
      "MultiRegion regions must name at least two regions, the primary first, such as us-east-1,eu-west-1; got 'us-east-1'.",
    ],
    [
      'a region twice',
      () => new MultiRegion(newApp(), 'Shop', props({ regions: ['us-east-1', 'eu-west-1', 'us-east-1'] })),
      "which repeats 'us-east-1'",
    ],
    [
      'a region without VPC origins',
      () => new MultiRegion(newApp(), 'Shop', props({ regions: ['us-east-1', 'cn-north-1'] })),
      "MultiRegion regions must be a region where CloudFront VPC origins can reach the load balancer; got 'cn-north-1'",
    ],
    [
      'secondaryRegions given to MultiRegion',
      () => {
        const a = newApp();
        return new MultiRegion(a, 'Shop', props({ secondaryRegions: [secondary(a)] }));
      },
      /MultiRegion builds the secondary regions from regions; leave secondaryRegions out/,
    ],
    [
      'StageStack at 10m without secondary regions',
      () => new StageStack(newApp(), 'Shop', { stage: UserStage.USERS_10M }),
      /stage '10m' runs in several regions and needs secondaryRegions/,
    ],
    [
      'secondary regions below 10m',
      () => {
        const a = newApp();
        return new StageStack(a, 'Shop', { stage: UserStage.USERS_1M, secondaryRegions: [secondary(a)] });
      },
      "secondaryRegions apply to stage '10m' only; got 1 at stage '1m'. Leave them out.",
    ],
    [
      'a secondary of another primary',
      () => {
        const a = newApp();
        return new StageStack(a, 'Shop', {
          stage: UserStage.USERS_10M,
          secondaryRegions: [secondary(a, 'eu-west-1', 'Other')],
        });
      },
      "every secondary region must name this stack as its primary: stack 'Other-eu-west-1' names 'Other' in us-east-1, this stack is 'Shop'.",
    ],
    [
      'two secondaries in one region',
      () => {
        const a = newApp();
        return new StageStack(a, 'Shop', {
          stage: UserStage.USERS_10M,
          secondaryRegions: [
            secondary(a),
            new SecondaryRegionStack(a, 'Shop-eu-west-1b', {
              region: 'eu-west-1',
              primaryStackName: 'Shop',
              primaryRegion: 'us-east-1',
            }),
          ],
        });
      },
      "secondaryRegions must be in different regions; got 'eu-west-1' twice.",
    ],
    [
      'a secondary in the primary region',
      () => secondary(newApp(), 'us-east-1'),
      "SecondaryRegionStack region must differ from primaryRegion; got 'us-east-1' for both.",
    ],
    [
      'a secondary whose env names another region',
      () =>
        new SecondaryRegionStack(newApp(), 'S', {
          region: 'eu-west-1',
          env: { region: 'eu-west-2' },
          primaryStackName: 'Shop',
          primaryRegion: 'us-east-1',
        }),
      "SecondaryRegionStack env.region must be left out or equal region; got env.region 'eu-west-2' and region 'eu-west-1'.",
    ],
    [
      'a secondary in an unknown region',
      () => secondary(newApp(), 'mars-north-1'),
      "SecondaryRegionStack region must be a region where CloudFront VPC origins can reach the load balancer; got 'mars-north-1'",
    ],
    [
      'a primary in an unknown region',
      () => secondary(newApp(), 'eu-west-1', 'Shop', 'us-east-7'),
      "SecondaryRegionStack primaryRegion must be a region where CloudFront VPC origins can reach the load balancer; got 'us-east-7'",
    ],
    [
      'a writer region that is no region',
      () =>
        new SecondaryRegionStack(newApp(), 'S', {
          region: 'eu-west-1',
          primaryStackName: 'Shop',
          primaryRegion: 'us-east-1',
          writerRegion: 'eu-west',
        }),
      "SecondaryRegionStack writerRegion must be a region where CloudFront VPC origins can reach the load balancer; got 'eu-west'",
    ],
    [
      'a network range that is no CIDR',
      () =>
        new SecondaryRegionStack(newApp(), 'S', {
          region: 'eu-west-1',
          primaryStackName: 'Shop',
          primaryRegion: 'us-east-1',
          cidr: '10.1.0.0',
        }),
      /cidr/,
    ],
    [
      // The secondary region's sizes reach its constructs, which check them.
      'a fleet maximum under its minimum',
      () =>
        new SecondaryRegionStack(newApp(), 'S', {
          region: 'eu-west-1',
          primaryStackName: 'Shop',
          primaryRegion: 'us-east-1',
          webMinCapacity: 4,
          webMaxCapacity: 3,
        }),
      /maxCapacity must be a whole number from 5 to 500/,
    ],
    [
      'a database name PostgreSQL refuses',
      () =>
        new SecondaryRegionStack(newApp(), 'S', {
          region: 'eu-west-1',
          primaryStackName: 'Shop',
          primaryRegion: 'us-east-1',
          databaseName: 'my-app',
        }),
      /S\/DatabaseReplica: databaseName must start with a letter/,
    ],
    [
      'a certificate without its name',
      () =>
        new SecondaryRegionStack(newApp(), 'S', {
          region: 'eu-west-1',
          primaryStackName: 'Shop',
          primaryRegion: 'us-east-1',
          loadBalancerDomainName: 'eu.example.com',
        }),
      /loadBalancerCertificate and loadBalancerDomainName go together/,
    ],
  ])('%s fails with a clear message', (_what, build, message) => {
    expect(build).toThrow(message);
  });

  test('synthStage(10m) gives the primary and its secondary region', () => {
    const { stack, secondaries } = synthStage(UserStage.USERS_10M);
    expect(stack.stage).toBe(UserStage.USERS_10M);
    expect(secondaries.map((s) => s.stack.stackName)).toEqual(['ScaleStages-us-west-2']);
  });
});
