import { Duration, Size, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { CrossRegionReplica, CrossRegionReplicaProps, LoadBalancedTier, StageNetwork } from '../../lib';
import { newApp } from '../helpers';

const SOURCE = {
  sourceInstanceIdentifier: 'app-db',
  sourceRegion: 'us-east-1',
  sourceSecretNameWithSuffix: 'DatabaseSecret-AbCdEf',
};

function build(props: Partial<CrossRegionReplicaProps> = {}, region: string | null = 'eu-west-1') {
  const stack = new Stack(newApp(), 'Replica', { env: region ? { region } : undefined });
  const vpc = new StageNetwork(stack, 'Network', { natGateways: 1 }).vpc;
  const replica = new CrossRegionReplica(stack, 'DatabaseReplica', { vpc, ...SOURCE, ...props });
  return { stack, vpc, replica };
}

describe('CrossRegionReplica defaults', () => {
  const { stack, vpc, replica } = build();
  const web = new LoadBalancedTier(stack, 'Web', { vpc });
  replica.connectApp(web);
  const template = Template.fromStack(stack);

  test("a replica of the source's ARN in its region, encrypted with a key of this region", () => {
    template.hasResourceProperties('AWS::RDS::DBInstance', {
      SourceDBInstanceIdentifier: {
        'Fn::Join': [
          '',
          ['arn:', { Ref: 'AWS::Partition' }, ':rds:us-east-1:', { Ref: 'AWS::AccountId' }, ':db:app-db'],
        ],
      },
      SourceRegion: 'us-east-1',
      KmsKeyId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^DatabaseReplicaKey'), 'Arn'] },
      DBInstanceClass: 'db.m7g.large',
      StorageType: 'gp3',
      MaxAllocatedStorage: 1000,
      DeletionProtection: true,
      PubliclyAccessible: false,
      CACertificateIdentifier: 'rds-ca-rsa2048-g1',
      EnableCloudwatchLogsExports: ['postgresql', 'upgrade'],
    });
    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
  });

  test('sets none of what a replica inherits (CloudFormation rejects them)', () => {
    const [props] = Object.values(template.findResources('AWS::RDS::DBInstance')).map((r) => r.Properties);
    for (const name of [
      'BackupRetentionPeriod',
      'DBName',
      'MasterUsername',
      'MasterUserPassword',
      'StorageEncrypted',
      'Engine',
    ]) {
      expect(props).not.toHaveProperty(name);
    }
  });

  test('is retained, with its key and subnet group, and requires TLS in its own parameter group', () => {
    template.hasResource('AWS::RDS::DBInstance', { DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
    template.hasResource('AWS::KMS::Key', { DeletionPolicy: 'Retain' });
    template.hasResource('AWS::RDS::DBSubnetGroup', { DeletionPolicy: 'Retain' });
    template.hasResourceProperties('AWS::RDS::DBParameterGroup', {
      Family: 'postgres17',
      Parameters: { 'rds.force_ssl': '1', log_min_duration_statement: '1000' },
    });
  });

  test('sits in the isolated data subnets', () => {
    const dataSubnets = vpc.selectSubnets({ subnetGroupName: StageNetwork.DATA_SUBNETS }).subnetIds;
    template.hasResourceProperties('AWS::RDS::DBSubnetGroup', {
      SubnetIds: dataSubnets.map((id) => stack.resolve(id)),
    });
  });

  const REPLICA_SECRET_ARN = {
    'Fn::Join': [
      '',
      [
        'arn:',
        { Ref: 'AWS::Partition' },
        ':secretsmanager:eu-west-1:',
        { Ref: 'AWS::AccountId' },
        ':secret:DatabaseSecret-AbCdEf',
      ],
    ],
  };

  test('the replica secret is the source secret with this region in its ARN', () => {
    expect(stack.resolve(replica.secret.secretArn)).toEqual(REPLICA_SECRET_ARN);
  });

  test('connectApp opens PostgreSQL to the tier and hands it the replica as host, reader and secret', () => {
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      IpProtocol: 'tcp',
      FromPort: 5432,
      ToPort: 5432,
      GroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^DatabaseReplicaSecurityGroup'), 'GroupId'] },
      SourceSecurityGroupId: {
        'Fn::GetAtt': [Match.stringLikeRegexp('^WebServersSecurityGroup|^Web'), 'GroupId'],
      },
    });
    const userData = JSON.stringify(template.findResources('AWS::EC2::LaunchTemplate'));
    for (const name of ['DATABASE_HOST', 'DATABASE_READER_HOSTS', 'DATABASE_SECRET_ARN', 'DATABASE_NAME']) {
      expect(userData).toContain(name);
    }
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue'],
            Resource: REPLICA_SECRET_ARN,
          }),
        ]),
      },
    });
  });

  test('metricReplicaLag reads ReplicaLag of this instance, the maximum per minute', () => {
    const metric = replica.metricReplicaLag();
    expect(metric.metricName).toBe('ReplicaLag');
    expect(metric.statistic).toBe('Maximum');
    expect(stack.resolve(metric.dimensions!.DBInstanceIdentifier)).toEqual({
      Ref: expect.stringMatching(/^DatabaseReplicaInstance/),
    });
  });
});

describe('CrossRegionReplica input', () => {
  test.each<[string, Partial<CrossRegionReplicaProps>, string | null, RegExp]>([
    ['a stack without a region', {}, null, /CrossRegionReplica needs a stack with an explicit region/],
    [
      'the source in the same region',
      { sourceRegion: 'eu-west-1' },
      'eu-west-1',
      /sourceRegion must differ from the replica's region; got 'eu-west-1' for both/,
    ],
    [
      'a storage ceiling under what a stage starts with',
      { maxAllocatedStorage: Size.gibibytes(20) },
      'eu-west-1',
      /maxAllocatedStorage \(GiB\) must be/,
    ],
    [
      'an unknown source region',
      { sourceRegion: 'us-middle-1' },
      'eu-west-1',
      /sourceRegion must be an AWS region such as us-east-1; got 'us-middle-1'/,
    ],
    [
      'a secret name without its suffix',
      { sourceSecretNameWithSuffix: 'DatabaseSecret' },
      'eu-west-1',
      /sourceSecretNameWithSuffix must be the last part of the source secret's ARN.*got 'DatabaseSecret'/,
    ],
    [
      'a whole secret ARN where its last part belongs',
      {
        sourceSecretNameWithSuffix:
          'arn:aws:secretsmanager:us-east-1:123456789012:secret:DatabaseSecret-AbCdEf',
      },
      'eu-west-1',
      /sourceSecretNameWithSuffix must be the last part of the source secret's ARN/,
    ],
    [
      'an endpoint address where the identifier belongs',
      { sourceInstanceIdentifier: 'app-db.c1a2b3c4d5e6.us-east-1.rds.amazonaws.com' },
      'eu-west-1',
      /sourceInstanceIdentifier must be a DB instance identifier .*got 'app-db.c1a2b3c4d5e6/,
    ],
    [
      'an identifier ending in a hyphen',
      { sourceInstanceIdentifier: 'app-db-' },
      'eu-west-1',
      /sourceInstanceIdentifier must be a DB instance identifier/,
    ],
    [
      'a database name PostgreSQL refuses',
      { databaseName: 'my-app' },
      'eu-west-1',
      /databaseName must start with a letter and hold only letters, digits and underscores/,
    ],
    [
      'a slow-statement threshold in part milliseconds',
      { slowStatementThreshold: Duration.millis(1.5) },
      'eu-west-1',
      /slowStatementThreshold \(ms\) must be a whole number from 0 to 2147483647; got 1.5/,
    ],
    [
      'a class with its db. prefix',
      { instanceType: new ec2.InstanceType('db.m7g.large') },
      'eu-west-1',
      /instanceType takes the instance class without the 'db.' prefix/,
    ],
  ])('%s fails with a clear message', (_what, props, region, message) => {
    expect(() => build(props, region)).toThrow(message);
  });
});
