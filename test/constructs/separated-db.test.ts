import { Duration, Size, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as rds from 'aws-cdk-lib/aws-rds';
import { SeparatedDb, SingleServer } from '../../lib';
import { networkStack, newApp } from '../helpers';

function build(props: Partial<ConstructorParameters<typeof SeparatedDb>[2]> = {}) {
  const { stack, vpc } = networkStack();
  const db = new SeparatedDb(stack, 'Database', { vpc, ...props });
  return { stack, vpc, db };
}

describe('SeparatedDb defaults', () => {
  const { stack, vpc, db } = build();
  const server = new SingleServer(stack, 'Server', { vpc, localDatabase: false });
  db.connectApp(server);
  const template = Template.fromStack(stack);

  test('PostgreSQL 17 on a single-AZ db.t4g.micro with encrypted, autoscaling gp3 storage', () => {
    template.resourceCountIs('AWS::RDS::DBInstance', 1);
    template.hasResourceProperties('AWS::RDS::DBInstance', {
      Engine: 'postgres',
      EngineVersion: '17',
      DBInstanceClass: 'db.t4g.micro',
      MultiAZ: false,
      StorageType: 'gp3',
      AllocatedStorage: '20',
      MaxAllocatedStorage: 100,
      StorageEncrypted: true,
      PubliclyAccessible: false,
      DBName: 'app',
    });
  });

  test('a week of backups, deletion protection and a snapshot on delete or replace', () => {
    template.hasResource('AWS::RDS::DBInstance', {
      Properties: { BackupRetentionPeriod: 7, DeletionProtection: true, CopyTagsToSnapshot: true },
      DeletionPolicy: 'Snapshot',
      UpdateReplacePolicy: 'Snapshot',
    });
  });

  test('the master password comes from a retained secret the stack generates, not from RDS', () => {
    template.hasResourceProperties('AWS::RDS::DBInstance', {
      ManageMasterUserPassword: false,
      MasterUsername: 'postgres',
      MasterUserPassword: {
        'Fn::Join': ['', Match.arrayWith([Match.stringLikeRegexp('resolve:secretsmanager:')])],
      },
    });
    template.hasResource('AWS::SecretsManager::Secret', {
      Properties: {
        GenerateSecretString: Match.objectLike({
          SecretStringTemplate: '{"username":"postgres"}',
          GenerateStringKey: 'password',
          ExcludeCharacters: Match.stringLikeRegexp('/.*@.*"'),
        }),
      },
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
    expect(stack.resolve(db.secret.secretArn)).toEqual({
      Ref: expect.stringMatching(/^DatabaseInstanceSecretAttachment/),
    });
  });

  test('the secret rotates every 30 days through a function in the database subnets', () => {
    template.hasResourceProperties('AWS::SecretsManager::RotationSchedule', {
      RotationRules: { ScheduleExpression: 'rate(30 days)' },
    });
    template.hasResourceProperties('AWS::Serverless::Application', {
      Location: Match.objectLike({ ApplicationId: Match.anyValue() }),
      Parameters: Match.objectLike({
        vpcSubnetIds: { 'Fn::Join': ['', Match.arrayWith([{ Ref: Match.stringLikeRegexp('DataSubnet1') }])] },
      }),
    });
    expect(stack.resolve(db.rotation.node.path)).toBe('Test/Database/Instance/RotationSingleUser');
  });

  test('the rotation function may reach the database and HTTPS, nothing else', () => {
    template.hasResourceProperties('AWS::EC2::SecurityGroup', {
      GroupDescription: Match.stringLikeRegexp('^SeparatedDb password rotation'),
      SecurityGroupEgress: [Match.objectLike({ CidrIp: '0.0.0.0/0', FromPort: 443, ToPort: 443 })],
    });
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      GroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^DatabaseSecurityGroup'), 'GroupId'] },
      SourceSecurityGroupId: {
        'Fn::GetAtt': [Match.stringLikeRegexp('^DatabaseRotationSecurityGroup'), 'GroupId'],
      },
    });
  });

  test('TLS is required through its own parameter group', () => {
    template.hasResourceProperties('AWS::RDS::DBParameterGroup', {
      Family: 'postgres17',
      Parameters: Match.objectLike({ 'rds.force_ssl': '1' }),
    });
  });

  test('statements of a second or more are logged, and the logs go to CloudWatch for 90 days', () => {
    template.hasResourceProperties('AWS::RDS::DBParameterGroup', {
      Parameters: Match.objectLike({ log_min_duration_statement: '1000' }),
    });
    template.hasResourceProperties('AWS::RDS::DBInstance', {
      EnableCloudwatchLogsExports: ['postgresql', 'upgrade'],
    });
    for (const log of ['postgresql', 'upgrade']) {
      template.hasResourceProperties('Custom::LogRetention', {
        LogGroupName: {
          'Fn::Join': [
            '',
            ['/aws/rds/instance/', { Ref: Match.stringLikeRegexp('^DatabaseInstance') }, `/${log}`],
          ],
        },
        RetentionInDays: 90,
      });
    }
  });

  test('the subnet group uses the isolated data subnets', () => {
    template.hasResourceProperties('AWS::RDS::DBSubnetGroup', {
      SubnetIds: [
        { Ref: Match.stringLikeRegexp('NetworkVpcDataSubnet1') },
        { Ref: Match.stringLikeRegexp('NetworkVpcDataSubnet2') },
      ],
    });
  });

  test('only the connected app tier and the rotation function reach the database port', () => {
    const rules = template.findResources('AWS::EC2::SecurityGroupIngress', {
      Properties: {
        GroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^DatabaseSecurityGroup'), 'GroupId'] },
      },
    });
    expect(Object.values(rules).map((r) => r.Properties)).toEqual([
      expect.objectContaining({
        SourceSecurityGroupId: {
          'Fn::GetAtt': [expect.stringMatching(/^DatabaseRotationSecurityGroup/), 'GroupId'],
        },
        GroupId: { 'Fn::GetAtt': [expect.stringMatching(/^DatabaseSecurityGroup/), 'GroupId'] },
      }),
      expect.objectContaining({
        IpProtocol: 'tcp',
        FromPort: { 'Fn::GetAtt': [expect.stringMatching(/^DatabaseInstance/), 'Endpoint.Port'] },
        SourceSecurityGroupId: { 'Fn::GetAtt': [expect.stringMatching(/^ServerSecurityGroup/), 'GroupId'] },
        GroupId: { 'Fn::GetAtt': [expect.stringMatching(/^DatabaseSecurityGroup/), 'GroupId'] },
      }),
    ]);
  });

  test('the database has no outbound rules and the app tier may reach only its port', () => {
    template.hasResourceProperties('AWS::EC2::SecurityGroup', {
      GroupDescription: Match.stringLikeRegexp('^SeparatedDb'),
      SecurityGroupEgress: [
        Match.objectLike({ CidrIp: '255.255.255.255/32', Description: 'Disallow all traffic' }),
      ],
    });
    template.hasResourceProperties('AWS::EC2::SecurityGroupEgress', {
      GroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('ServerSecurityGroup'), 'GroupId'] },
      DestinationSecurityGroupId: {
        'Fn::GetAtt': [Match.stringLikeRegexp('DatabaseSecurityGroup'), 'GroupId'],
      },
      FromPort: { 'Fn::GetAtt': [Match.stringLikeRegexp('DatabaseInstance'), 'Endpoint.Port'] },
    });
  });

  test('the app tier can read the secret and gets the connection facts', () => {
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue'],
            Resource: { Ref: Match.stringLikeRegexp('^DatabaseInstanceSecretAttachment') },
          }),
        ]),
      },
    });
    const userData = JSON.stringify(template.findResources('AWS::EC2::Instance'));
    for (const name of ['DATABASE_HOST=', 'DATABASE_PORT=', 'DATABASE_NAME=app', 'DATABASE_SECRET_ARN=']) {
      expect(userData).toContain(name);
    }
    expect(userData).toContain('Endpoint.Address');
  });

  test('exposes the escape hatches', () => {
    expect(db.database).toBeInstanceOf(rds.DatabaseInstance);
    expect(db.connections.securityGroups).toHaveLength(1);
    expect(db.databaseName).toBe('app');
  });
});

describe('SeparatedDb overrides', () => {
  test('class, Multi-AZ, storage, retention, version and name', () => {
    const { stack } = build({
      instanceType: new ec2.InstanceType('r7g.large'),
      multiAz: true,
      allocatedStorage: Size.gibibytes(100),
      maxAllocatedStorage: Size.gibibytes(500),
      backupRetention: Duration.days(14),
      engineVersion: rds.PostgresEngineVersion.VER_16,
      databaseName: 'shop',
    });
    Template.fromStack(stack).hasResourceProperties('AWS::RDS::DBInstance', {
      DBInstanceClass: 'db.r7g.large',
      MultiAZ: true,
      AllocatedStorage: '100',
      MaxAllocatedStorage: 500,
      BackupRetentionPeriod: 14,
      EngineVersion: '16',
      DBName: 'shop',
    });
  });

  test('rotation interval, and a Secrets Manager endpoint for subnets without a NAT', () => {
    const { stack, vpc } = networkStack();
    const endpoint = vpc.addInterfaceEndpoint('SecretsManager', {
      service: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    });
    new SeparatedDb(stack, 'Database', {
      vpc,
      rotationInterval: Duration.days(7),
      secretsManagerEndpoint: endpoint,
    });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::SecretsManager::RotationSchedule', {
      RotationRules: { ScheduleExpression: 'rate(7 days)' },
    });
    template.hasResourceProperties('AWS::Serverless::Application', {
      Parameters: Match.objectLike({
        endpoint: { 'Fn::Join': ['', Match.arrayWith([{ Ref: Match.stringLikeRegexp('SecretsManager') }])] },
      }),
    });
    template.hasResourceProperties('AWS::EC2::SecurityGroupEgress', {
      GroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^DatabaseRotationSecurityGroup'), 'GroupId'] },
      DestinationSecurityGroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('SecretsManager'), 'GroupId'] },
      FromPort: 443,
    });
    template.hasResourceProperties('AWS::EC2::SecurityGroup', {
      GroupDescription: Match.stringLikeRegexp('^SeparatedDb password rotation'),
      SecurityGroupEgress: Match.absent(),
    });
  });

  test('slow-statement threshold and log retention', () => {
    const { stack } = build({
      slowStatementThreshold: Duration.millis(250),
      logRetention: logs.RetentionDays.ONE_YEAR,
    });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::RDS::DBParameterGroup', {
      Parameters: Match.objectLike({ log_min_duration_statement: '250' }),
    });
    template.resourcePropertiesCountIs('Custom::LogRetention', { RetentionInDays: 365 }, 2);
  });

  test('turning deletion protection off warns', () => {
    const { stack } = build({ deletionProtection: false });
    Template.fromStack(stack).hasResourceProperties('AWS::RDS::DBInstance', { DeletionProtection: false });
    Annotations.fromStack(stack).hasWarning(
      '/Test/Database',
      Match.stringLikeRegexp('deletionProtection is off'),
    );
  });

  test('a non-Graviton class warns', () => {
    const { stack } = build({ instanceType: new ec2.InstanceType('m5.large') });
    Annotations.fromStack(stack).hasWarning(
      '/Test/Database',
      Match.stringLikeRegexp('m5.large is not Graviton'),
    );
  });
});

describe('SeparatedDb validation', () => {
  test.each([
    [
      { allocatedStorage: Size.gibibytes(10) },
      /allocatedStorage \(GiB\) must be a whole number from 20 to 65536.*got 10/,
    ],
    [
      { allocatedStorage: Size.gibibytes(200), maxAllocatedStorage: Size.gibibytes(100) },
      /maxAllocatedStorage \(GiB\) must be a whole number from 220 to 65536 \(RDS wants it at least 10% above allocatedStorage\); got 100/,
    ],
    [
      { backupRetention: Duration.days(3) },
      /backupRetention \(days\) must be a whole number from 7 to 35; got 3/,
    ],
    [
      { backupRetention: Duration.days(36) },
      /backupRetention \(days\) must be a whole number from 7 to 35; got 36/,
    ],
    [
      { allocatedStorage: Size.mebibytes(20992) },
      /allocatedStorage \(GiB\) must be a whole number.*got 20.5/,
    ],
    [
      { backupRetention: Duration.hours(200) },
      /backupRetention \(days\) must be a whole number from 7 to 35; got 8.33/,
    ],
    [
      { allocatedStorage: Size.gibibytes(100), maxAllocatedStorage: Size.gibibytes(100) },
      /maxAllocatedStorage \(GiB\) must be a whole number from 110 to 65536 \(RDS wants it at least 10% above allocatedStorage\); got 100/,
    ],
    [{ databaseName: '1st-db' }, /databaseName must start with a letter.*got '1st-db'/],
    [
      { rotationInterval: Duration.days(0) },
      /rotationInterval \(days\) must be a whole number from 1 to 365; got 0/,
    ],
    [
      { rotationInterval: Duration.hours(36) },
      /rotationInterval \(days\) must be a whole number from 1 to 365; got 1.5/,
    ],
    [
      { rotationInterval: Duration.days(400) },
      /rotationInterval \(days\) must be a whole number from 1 to 365; got 400/,
    ],
    [
      { slowStatementThreshold: Duration.millis(1.5) },
      /slowStatementThreshold \(ms\) must be a whole number from 0 to 2147483647; got 1.5/,
    ],
  ])('%o fails', (props, message) => {
    expect(() => build(props)).toThrow(message);
  });

  test('errors name the construct path', () => {
    expect(() => build({ backupRetention: Duration.days(1) })).toThrow(/^Test\/Database: /);
  });

  test('replicateSecretTo takes an AWS region, and adds it to the secret', () => {
    const { stack, db } = build();
    expect(() => db.replicateSecretTo('mars-1')).toThrow(
      "replicateSecretTo needs an AWS region such as eu-west-1; got 'mars-1'.",
    );
    db.replicateSecretTo('eu-west-1');
    Template.fromStack(stack).hasResourceProperties('AWS::SecretsManager::Secret', {
      ReplicaRegions: [{ Region: 'eu-west-1' }],
    });
  });
});

test('a VPC without a Data subnet group needs vpcSubnets', () => {
  const stack = new Stack(newApp(), 'Test');
  const vpc = new ec2.Vpc(stack, 'Vpc', {
    natGateways: 0,
    subnetConfiguration: [{ name: 'Isolated', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }],
  });
  expect(() => new SeparatedDb(stack, 'Database', { vpc })).toThrow(
    /Test\/Database: vpcSubnets select no subnets in this vpc .*'Data'.*pass vpcSubnets/,
  );
  new SeparatedDb(stack, 'Db', { vpc, vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED } });
  Template.fromStack(stack).hasResourceProperties('AWS::RDS::DBSubnetGroup', {
    SubnetIds: [
      { Ref: Match.stringLikeRegexp('VpcIsolatedSubnet1') },
      { Ref: Match.stringLikeRegexp('VpcIsolatedSubnet2') },
    ],
  });
});
