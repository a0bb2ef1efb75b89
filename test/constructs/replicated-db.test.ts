import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as rds from 'aws-cdk-lib/aws-rds';
import { LoadBalancedTier, ReplicatedDb, SeparatedDb } from '../../lib';
import { networkStack } from '../helpers';

function build(props: Partial<ConstructorParameters<typeof ReplicatedDb>[2]> = {}) {
  // A NAT, so the app tier's servers have a way out.
  const { stack, vpc } = networkStack({ natGateways: 1 });
  const primary = new SeparatedDb(stack, 'Database', {
    vpc,
    instanceType: new ec2.InstanceType('m7g.large'),
    multiAz: true,
  });
  const replicas = new ReplicatedDb(stack, 'ReadReplicas', { primary, ...props });
  return { stack, vpc, primary, replicas };
}

/** The read replicas of a template: the DB instances with a source. */
function replicasOf(template: Template) {
  return Object.entries(template.findResources('AWS::RDS::DBInstance')).filter(
    ([, r]) => r.Properties.SourceDBInstanceIdentifier,
  );
}

describe('ReplicatedDb defaults', () => {
  const { stack, vpc, primary, replicas } = build();
  const web = new LoadBalancedTier(stack, 'Web', { vpc });
  primary.connectApp(web);
  replicas.connectApp(web);
  const template = Template.fromStack(stack);

  test("one replica of the primary, in the primary's class, subnets and parameter group", () => {
    const found = replicasOf(template);
    expect(found).toHaveLength(1);
    expect(found[0][1].Properties).toMatchObject({
      SourceDBInstanceIdentifier: {
        'Fn::Join': ['', expect.arrayContaining([{ Ref: expect.stringMatching(/^DatabaseInstance/) }])],
      },
      DBInstanceClass: 'db.m7g.large',
      StorageType: 'gp3',
      MaxAllocatedStorage: 100,
      DBParameterGroupName: { Ref: expect.stringMatching(/^DatabaseParameters/) },
      DBSubnetGroupName: { Ref: expect.stringMatching(/^ReadReplicasSubnetGroup/) },
      PubliclyAccessible: false,
      EnableIAMDatabaseAuthentication: true,
      CACertificateIdentifier: 'rds-ca-rsa2048-g1',
    });
    template.hasResourceProperties('AWS::RDS::DBSubnetGroup', {
      DBSubnetGroupDescription: Match.stringLikeRegexp('^ReplicatedDb'),
      SubnetIds: [
        { Ref: Match.stringLikeRegexp('NetworkVpcDataSubnet1') },
        { Ref: Match.stringLikeRegexp('NetworkVpcDataSubnet2') },
      ],
    });
  });

  test("the replica exports the primary's logs, kept as long as the primary's", () => {
    const [id, replica] = replicasOf(template)[0];
    expect(replica.Properties.EnableCloudwatchLogsExports).toEqual(['postgresql', 'upgrade']);
    template.hasResourceProperties('Custom::LogRetention', {
      LogGroupName: { 'Fn::Join': ['', ['/aws/rds/instance/', { Ref: id }, '/postgresql']] },
      RetentionInDays: 90,
    });
  });

  test('encryption comes from the encrypted primary (CloudFormation rejects StorageEncrypted on a replica)', () => {
    const [, replica] = replicasOf(template)[0];
    expect(replica.Properties.StorageEncrypted).toBeUndefined();
    template.hasResourceProperties('AWS::RDS::DBInstance', {
      SourceDBInstanceIdentifier: Match.absent(),
      StorageEncrypted: true,
    });
  });

  test('a replica is removed without a snapshot: CloudFormation takes none of a replica, the primary keeps the data', () => {
    const [, replica] = replicasOf(template)[0];
    expect(replica).toMatchObject({ DeletionPolicy: 'Delete', UpdateReplacePolicy: 'Delete' });
    expect(replica.Properties.DeletionProtection).toBe(false);
  });

  test('the primary is untouched: same construct, Snapshot policies and deletion protection', () => {
    template.hasResource('AWS::RDS::DBInstance', {
      Properties: { SourceDBInstanceIdentifier: Match.absent(), DeletionProtection: true },
      DeletionPolicy: 'Snapshot',
    });
    expect(stack.resolve((primary.database.node.defaultChild as rds.CfnDBInstance).logicalId)).toMatch(
      /^DatabaseInstance[0-9A-F]{8}$/,
    );
  });

  test('each replica has its own security group that admits only the app tier, on the database port', () => {
    const groups = Object.entries(template.findResources('AWS::EC2::SecurityGroup')).filter(([id]) =>
      id.startsWith('ReadReplicasReplica1SecurityGroup'),
    );
    expect(groups).toHaveLength(1);
    const [groupId, group] = groups[0];
    expect(group.Properties.SecurityGroupEgress).toEqual([
      expect.objectContaining({ CidrIp: '255.255.255.255/32' }),
    ]);
    const [, replica] = replicasOf(template)[0];
    expect(replica.Properties.VPCSecurityGroups).toEqual([{ 'Fn::GetAtt': [groupId, 'GroupId'] }]);
    const ingress = Object.values(template.findResources('AWS::EC2::SecurityGroupIngress'))
      .map((r) => r.Properties)
      .filter((p) => JSON.stringify(p.GroupId).includes(groupId));
    expect(ingress).toEqual([
      expect.objectContaining({
        FromPort: { 'Fn::GetAtt': [expect.stringMatching(/^DatabaseInstance/), 'Endpoint.Port'] },
        SourceSecurityGroupId: {
          'Fn::GetAtt': [expect.stringMatching(/^WebServerSecurityGroup/), 'GroupId'],
        },
      }),
    ]);
  });

  test('the app gets the reader endpoints in DATABASE_READER_HOSTS', () => {
    const userData = JSON.stringify(template.findResources('AWS::EC2::LaunchTemplate'));
    expect(userData).toContain('DATABASE_READER_HOSTS=');
    expect(stack.resolve(replicas.readerEndpoints)).toEqual([
      { 'Fn::GetAtt': [expect.stringMatching(/^ReadReplicasReplica1/), 'Endpoint.Address'] },
    ]);
  });

  test('exposes the escape hatches', () => {
    expect(replicas.replicas).toHaveLength(1);
    expect(replicas.replicas[0]).toBeInstanceOf(rds.DatabaseInstanceReadReplica);
    expect(replicas.connections.securityGroups).toHaveLength(1);
  });
});

describe('ReplicatedDb overrides', () => {
  const { stack, replicas } = build({ replicas: 3, instanceType: new ec2.InstanceType('r7g.xlarge') });
  const template = Template.fromStack(stack);

  test('count and class; the replicas alternate between the availability zones', () => {
    const found = replicasOf(template).map(([, r]) => r.Properties);
    expect(found.map((p) => p.DBInstanceClass)).toEqual(['db.r7g.xlarge', 'db.r7g.xlarge', 'db.r7g.xlarge']);
    const zones = found.map((p) => stack.resolve(p.AvailabilityZone)['Fn::Select'][0]);
    expect(zones).toEqual([0, 1, 0]);
  });

  test('one security group per replica, and endpoints in replica order', () => {
    expect(replicas.connections.securityGroups).toHaveLength(3);
    expect(
      stack.resolve(replicas.readerEndpoints).map((e: { 'Fn::GetAtt': string[] }) => e['Fn::GetAtt'][0]),
    ).toEqual([
      expect.stringMatching(/^ReadReplicasReplica1[0-9A-F]{8}$/),
      expect.stringMatching(/^ReadReplicasReplica2[0-9A-F]{8}$/),
      expect.stringMatching(/^ReadReplicasReplica3[0-9A-F]{8}$/),
    ]);
  });

  test('a non-Graviton class warns', () => {
    const built = build({ instanceType: new ec2.InstanceType('m5.large') });
    Annotations.fromStack(built.stack).hasWarning(
      '/Test/ReadReplicas',
      Match.stringLikeRegexp('m5.large is not Graviton'),
    );
  });
});

describe('ReplicatedDb validation', () => {
  test.each([
    [{ replicas: 0 }, /replicas must be a whole number from 1 to 15 .*; got 0/],
    [{ replicas: 16 }, /replicas must be a whole number from 1 to 15 .*; got 16/],
    [{ replicas: 2.5 }, /replicas must be a whole number from 1 to 15 .*; got 2.5/],
  ])('%o fails', (props, message) => {
    expect(() => build(props)).toThrow(message);
  });

  test('errors name the construct path', () => {
    expect(() => build({ replicas: 0 })).toThrow(/^Test\/ReadReplicas: /);
  });
});

test('a primary whose master password RDS manages fails synth: RDS creates no replica of it', () => {
  const { stack, primary } = build();
  (primary.database.node.defaultChild as rds.CfnDBInstance).manageMasterUserPassword = true;
  expect(() => Template.fromStack(stack)).toThrow(
    /ReadReplicas.*ManageMasterUserPassword.*RDS creates no read replica.*Password management with Amazon RDS and AWS Secrets Manager/s,
  );
});
