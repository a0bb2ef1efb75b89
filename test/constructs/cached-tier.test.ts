import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elasticache from 'aws-cdk-lib/aws-elasticache';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { CachedTier, CacheEngineVersion, EvictionPolicy, LoadBalancedTier } from '../../lib';
import { networkStack } from '../helpers';

function build(props: Partial<ConstructorParameters<typeof CachedTier>[2]> = {}) {
  // A NAT, so the app tier's servers have a way out.
  const { stack, vpc } = networkStack({ natGateways: 1 });
  const cache = new CachedTier(stack, 'Cache', { vpc, ...props });
  return { stack, vpc, cache };
}

const REPLICATION_GROUP = 'AWS::ElastiCache::ReplicationGroup';

describe('CachedTier defaults', () => {
  const { stack, vpc, cache } = build();
  const web = new LoadBalancedTier(stack, 'Web', { vpc });
  cache.connectApp(web);
  const template = Template.fromStack(stack);

  test('Valkey 8.0 on cache.t4g.micro: a primary and one replica, Multi-AZ with automatic failover', () => {
    template.resourceCountIs(REPLICATION_GROUP, 1);
    template.hasResourceProperties(REPLICATION_GROUP, {
      Engine: 'valkey',
      EngineVersion: '8.0',
      CacheNodeType: 'cache.t4g.micro',
      NumCacheClusters: 2,
      MultiAZEnabled: true,
      AutomaticFailoverEnabled: true,
      Port: 6379,
      AutoMinorVersionUpgrade: true,
    });
  });

  test('encrypted at rest and in transit, with TLS required and an AUTH token from Secrets Manager', () => {
    template.hasResourceProperties(REPLICATION_GROUP, {
      AtRestEncryptionEnabled: true,
      TransitEncryptionEnabled: true,
      TransitEncryptionMode: 'required',
      AuthToken: {
        'Fn::Join': [
          '',
          [
            '{{resolve:secretsmanager:',
            { Ref: Match.stringLikeRegexp('^CacheAuthToken') },
            ':SecretString:::}}',
          ],
        ],
      },
    });
    template.hasResourceProperties('AWS::SecretsManager::Secret', {
      GenerateSecretString: { PasswordLength: 64, ExcludePunctuation: true },
    });
  });

  test('evicts with allkeys-lru through its own parameter group', () => {
    template.hasResourceProperties('AWS::ElastiCache::ParameterGroup', {
      CacheParameterGroupFamily: 'valkey8',
      Properties: { 'maxmemory-policy': 'allkeys-lru' },
    });
    template.hasResourceProperties(REPLICATION_GROUP, {
      CacheParameterGroupName: { Ref: Match.stringLikeRegexp('^CacheParameters') },
    });
  });

  test('daily snapshots kept 3 days, and a final snapshot on delete or replace', () => {
    template.hasResource(REPLICATION_GROUP, {
      Properties: { SnapshotRetentionLimit: 3 },
      DeletionPolicy: 'Snapshot',
      UpdateReplacePolicy: 'Snapshot',
    });
  });

  test('the nodes go in the isolated data subnets', () => {
    template.hasResourceProperties('AWS::ElastiCache::SubnetGroup', {
      SubnetIds: [
        { Ref: Match.stringLikeRegexp('NetworkVpcDataSubnet1') },
        { Ref: Match.stringLikeRegexp('NetworkVpcDataSubnet2') },
      ],
    });
  });

  test('the slow log goes to a log group kept for a month', () => {
    template.hasResource('AWS::Logs::LogGroup', {
      Properties: { RetentionInDays: 30 },
      DeletionPolicy: 'Retain',
    });
    template.hasResourceProperties(REPLICATION_GROUP, {
      LogDeliveryConfigurations: [
        Match.objectLike({ DestinationType: 'cloudwatch-logs', LogType: 'slow-log', LogFormat: 'json' }),
      ],
    });
  });

  test('only the connected app tier reaches the cache port; the cache has no outbound rules', () => {
    const ingress = Object.values(template.findResources('AWS::EC2::SecurityGroupIngress'))
      .map((r) => r.Properties)
      .filter((p) => JSON.stringify(p.GroupId).includes('CacheSecurityGroup'));
    expect(ingress).toEqual([
      expect.objectContaining({
        IpProtocol: 'tcp',
        FromPort: 6379,
        ToPort: 6379,
        SourceSecurityGroupId: {
          'Fn::GetAtt': [expect.stringMatching(/^WebServerSecurityGroup/), 'GroupId'],
        },
      }),
    ]);
    template.hasResourceProperties('AWS::EC2::SecurityGroup', {
      GroupDescription: Match.stringLikeRegexp('^CachedTier'),
      SecurityGroupEgress: [Match.objectLike({ CidrIp: '255.255.255.255/32' })],
    });
  });

  test('the app tier can read the AUTH token and gets the endpoints, port and secret ARN', () => {
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue'],
            Resource: { Ref: Match.stringLikeRegexp('^CacheAuthToken') },
          }),
        ]),
      },
    });
    const userData = JSON.stringify(template.findResources('AWS::EC2::LaunchTemplate'));
    for (const name of ['CACHE_HOST=', 'CACHE_READER_HOST=', 'CACHE_PORT=6379', 'CACHE_SECRET_ARN=']) {
      expect(userData).toContain(name);
    }
    expect(userData).toContain('PrimaryEndPoint.Address');
    expect(userData).toContain('ReaderEndPoint.Address');
  });

  test('Secrets Manager rotates the AUTH token every 30 days, once the replication group exists', () => {
    template.resourceCountIs('AWS::SecretsManager::RotationSchedule', 1);
    template.hasResource('AWS::SecretsManager::RotationSchedule', {
      Properties: {
        SecretId: { Ref: Match.stringLikeRegexp('^CacheAuthToken') },
        RotationLambdaARN: {
          'Fn::GetAtt': [Match.stringLikeRegexp('^CacheAuthTokenRotationFunction'), 'Arn'],
        },
        RotationRules: { ScheduleExpression: 'rate(30 days)' },
      },
      DependsOn: Match.arrayWith([Match.stringLikeRegexp('^CacheReplicationGroup')]),
    });
    // Secrets Manager may invoke the function.
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      Principal: 'secretsmanager.amazonaws.com',
      FunctionName: { 'Fn::GetAtt': [Match.stringLikeRegexp('^CacheAuthTokenRotationFunction'), 'Arn'] },
    });
  });

  test("the rotation function: the library's own code, outside the VPC, told which replication group", () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs24.x',
      Handler: 'cache-auth-token/index.handler',
      Timeout: 900,
      Environment: {
        Variables: { REPLICATION_GROUP_ID: { Ref: Match.stringLikeRegexp('^CacheReplicationGroup') } },
      },
      VpcConfig: Match.absent(),
    });
  });

  test('the rotation function may change the token of this replication group only', () => {
    const [policy] = Object.values(
      template.findResources('AWS::IAM::Policy', {
        Properties: {
          Roles: [{ Ref: Match.stringLikeRegexp('^CacheAuthTokenRotationFunctionServiceRole') }],
        },
      }),
    );
    const groupArn = {
      'Fn::Join': [
        '',
        [
          'arn:',
          { Ref: 'AWS::Partition' },
          ':elasticache:',
          { Ref: 'AWS::Region' },
          ':',
          { Ref: 'AWS::AccountId' },
          ':replicationgroup:',
          { Ref: expect.stringMatching(/^CacheReplicationGroup/) },
        ],
      ],
    };
    const secret = { Ref: expect.stringMatching(/^CacheAuthToken[0-9A-F]{8}$/) };
    expect(policy.Properties.PolicyDocument.Statement).toEqual([
      { Effect: 'Allow', Action: 'elasticache:DescribeReplicationGroups', Resource: groupArn },
      {
        Effect: 'Allow',
        Action: 'elasticache:ModifyReplicationGroup',
        Resource: groupArn,
        Condition: { Bool: { 'elasticache:AuthTokenEnabled': 'true' } },
      },
      {
        Effect: 'Allow',
        Action: [
          'secretsmanager:DescribeSecret',
          'secretsmanager:GetSecretValue',
          'secretsmanager:PutSecretValue',
          'secretsmanager:UpdateSecretVersionStage',
        ],
        Resource: secret,
      },
      // GetRandomPassword has no resource-level permissions.
      { Effect: 'Allow', Action: 'secretsmanager:GetRandomPassword', Resource: '*' },
    ]);
  });

  test('the rotation function logs to its own log group, kept 3 months', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      LoggingConfig: { LogGroup: { Ref: Match.stringLikeRegexp('^CacheAuthTokenRotationFunctionLogs') } },
    });
    template.hasResource('AWS::Logs::LogGroup', {
      Properties: { RetentionInDays: 90 },
      DeletionPolicy: 'Retain',
    });
  });

  test('exposes the escape hatches', () => {
    expect(cache.authTokenRotation).toBeInstanceOf(secretsmanager.RotationSchedule);
    expect(cache.authTokenRotationFunction).toBeInstanceOf(lambda.Function);
    expect(cache.replicationGroup).toBeInstanceOf(elasticache.CfnReplicationGroup);
    expect(cache.connections.securityGroups).toHaveLength(1);
    expect(stack.resolve(cache.authSecret.secretArn)).toEqual({
      Ref: expect.stringMatching(/^CacheAuthToken/),
    });
    expect(cache.port).toBe(6379);
  });
});

describe('CachedTier overrides', () => {
  test('node type, replicas, engine, eviction policy, snapshot and log retention', () => {
    const { stack } = build({
      nodeType: new ec2.InstanceType('r7g.large'),
      replicas: 2,
      engineVersion: CacheEngineVersion.REDIS_7_1,
      evictionPolicy: EvictionPolicy.VOLATILE_TTL,
      snapshotRetention: Duration.days(14),
      slowLogRetention: logs.RetentionDays.ONE_WEEK,
    });
    const template = Template.fromStack(stack);
    template.hasResourceProperties(REPLICATION_GROUP, {
      CacheNodeType: 'cache.r7g.large',
      NumCacheClusters: 3,
      Engine: 'redis',
      EngineVersion: '7.1',
      SnapshotRetentionLimit: 14,
    });
    template.hasResourceProperties('AWS::ElastiCache::ParameterGroup', {
      CacheParameterGroupFamily: 'redis7',
      Properties: { 'maxmemory-policy': 'volatile-ttl' },
    });
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 7 });
  });

  test.each([
    [Duration.days(1), 'rate(1 day)'],
    [Duration.days(7), 'rate(7 days)'],
    [Duration.days(365), 'rate(365 days)'],
  ])('authTokenRotationInterval %s rotates at %s', (interval, expression) => {
    const { stack } = build({ authTokenRotationInterval: interval });
    Template.fromStack(stack).hasResourceProperties('AWS::SecretsManager::RotationSchedule', {
      RotationRules: { ScheduleExpression: expression },
    });
  });

  test('any ElastiCache version through CacheEngineVersion.of', () => {
    const { stack } = build({ engineVersion: CacheEngineVersion.of('valkey', '8.1', 'valkey8') });
    Template.fromStack(stack).hasResourceProperties(REPLICATION_GROUP, {
      Engine: 'valkey',
      EngineVersion: '8.1',
    });
  });

  test('RETAIN keeps the cache and its token', () => {
    const { stack } = build({ removalPolicy: RemovalPolicy.RETAIN });
    const template = Template.fromStack(stack);
    template.hasResource(REPLICATION_GROUP, { DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
    template.hasResource('AWS::SecretsManager::Secret', { DeletionPolicy: 'Retain' });
  });

  test('DESTROY warns that the data goes without a snapshot', () => {
    const { stack } = build({ removalPolicy: RemovalPolicy.DESTROY });
    Template.fromStack(stack).hasResource(REPLICATION_GROUP, { DeletionPolicy: 'Delete' });
    Annotations.fromStack(stack).hasWarning(
      '/Test/Cache',
      Match.stringLikeRegexp('without a final snapshot'),
    );
  });

  test('a non-Graviton node type warns', () => {
    const { stack } = build({ nodeType: new ec2.InstanceType('m5.large') });
    Annotations.fromStack(stack).hasWarning(
      '/Test/Cache',
      Match.stringLikeRegexp('m5.large is not Graviton'),
    );
  });
});

describe('CachedTier validation', () => {
  test.each([
    [{ replicas: 0 }, /replicas must be a whole number from 1 to 5 .*; got 0/],
    [{ replicas: 6 }, /replicas must be a whole number from 1 to 5 .*; got 6/],
    [{ replicas: 1.5 }, /replicas must be a whole number from 1 to 5 .*; got 1.5/],
    [
      { nodeType: new ec2.InstanceType('t4g.nano') },
      /nodeType must be an ElastiCache node type .*got 't4g.nano'.*t4g\.\{micro,small,medium\}/,
    ],
    [
      { nodeType: new ec2.InstanceType('c7g.large') },
      /nodeType must be an ElastiCache node type .*got 'c7g.large'/,
    ],
    [
      { nodeType: new ec2.InstanceType('m5.8xlarge') },
      /nodeType must be an ElastiCache node type .*got 'm5.8xlarge'/,
    ],
    [
      { evictionPolicy: 'lru' as EvictionPolicy },
      /evictionPolicy must be one of allkeys-lru, .*noeviction; got 'lru'/,
    ],
    [
      { engineVersion: CacheEngineVersion.of('memcached', '1.6', 'memcached1.6') },
      /engine must be 'valkey' or 'redis'; got 'memcached'/,
    ],
    [
      { engineVersion: CacheEngineVersion.of('redis', '6.2', 'redis6.x') },
      /version must be 7.0 or later, the first that can require TLS; got '6.2'/,
    ],
    [
      { snapshotRetention: Duration.days(0) },
      /snapshotRetention \(days\) must be a whole number from 1 to 35; got 0/,
    ],
    [
      { snapshotRetention: Duration.days(36) },
      /snapshotRetention \(days\) must be a whole number from 1 to 35; got 36/,
    ],
    [
      { authTokenRotationInterval: Duration.days(0) },
      /authTokenRotationInterval \(days\) must be a whole number from 1 to 365; got 0/,
    ],
    [
      { authTokenRotationInterval: Duration.days(366) },
      /authTokenRotationInterval \(days\) must be a whole number from 1 to 365; got 366/,
    ],
    [
      { authTokenRotationInterval: Duration.hours(36) },
      /authTokenRotationInterval \(days\) must be a whole number from 1 to 365; got 1.5/,
    ],
    [{ vpcSubnets: { subnetGroupName: 'Nope' } }, /vpcSubnets select no subnets/],
  ])('%o fails', (props, message) => {
    expect(() => build(props)).toThrow(message);
  });

  test('errors name the construct path', () => {
    expect(() => build({ replicas: 0 })).toThrow(/^Test\/Cache: /);
  });
});
