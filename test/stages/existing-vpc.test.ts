/**
 * The blueprint in a VPC the team already has (`vpc`): the stage's tiers take its subnets by type, the
 * stack builds no network of its own, and a VPC without the subnets a stage needs fails synth naming
 * them.
 */
import { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { StageNetwork, StageStacks, UserStage } from '../../lib';
import { complianceReportOf } from '../compliance-report';
import { newApp } from '../helpers';

/** An app with the team's own VPC (public, private with NAT, isolated; two zones) in a stack of its own. */
function ownVpcApp(): { app: ReturnType<typeof newApp>; vpc: ec2.Vpc } {
  const app = newApp();
  const vpc = new ec2.Vpc(new Stack(app, 'Platform'), 'Vpc', {
    maxAzs: 2,
    natGateways: 1,
    subnetConfiguration: [
      { name: 'Public', subnetType: ec2.SubnetType.PUBLIC },
      { name: 'Private', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      { name: 'Isolated', subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
    ],
  });
  return { app, vpc };
}

// Stage 1, 10 and 1k built into the same VPC, synthesized once for the file.
const built = new Map(
  [UserStage.USERS_1, UserStage.USERS_10, UserStage.USERS_1K].map((stage) => {
    const { app, vpc } = ownVpcApp();
    const stacks = new StageStacks(app, 'Shop', { stage, vpc });
    return [stage, { vpc, template: Template.fromStack(stacks.primary) }] as const;
  }),
);
/** Whether a value is read from the Platform stack (a cross-stack reference). */
const fromPlatform = (value: unknown) => /"Fn::(GetStackOutput|ImportValue)"/.test(JSON.stringify(value));

test.each([...built.keys()])('stage %s builds no network of its own in the existing VPC', (stage) => {
  const { template } = built.get(stage)!;
  for (const type of ['AWS::EC2::VPC', 'AWS::EC2::Subnet', 'AWS::EC2::NatGateway', 'AWS::EC2::FlowLog']) {
    template.resourceCountIs(type, 0);
  }
});

test("stage 1's server goes in the VPC's public subnet", () => {
  const { template } = built.get(UserStage.USERS_1)!;
  const [server] = Object.values(template.findResources('AWS::EC2::Instance'));
  expect(fromPlatform(server.Properties.SubnetId)).toBe(true);
  expect(JSON.stringify(server.Properties.SubnetId)).toMatch(/PublicSubnet1/);
});

test("stage 1k's load balancer and fleet go in the private subnets, the database in the isolated ones", () => {
  const { template } = built.get(UserStage.USERS_1K)!;
  const [loadBalancer] = Object.values(template.findResources('AWS::ElasticLoadBalancingV2::LoadBalancer'));
  const [fleet] = Object.values(template.findResources('AWS::AutoScaling::AutoScalingGroup'));
  const [subnetGroup] = Object.values(template.findResources('AWS::RDS::DBSubnetGroup'));
  const subnets = (value: unknown) => JSON.stringify(value).match(/(Public|Private|Isolated)Subnet\d/g);
  expect(subnets(loadBalancer.Properties.Subnets)).toEqual(['PrivateSubnet1', 'PrivateSubnet2']);
  expect(subnets(fleet.Properties.VPCZoneIdentifier)).toEqual(['PrivateSubnet1', 'PrivateSubnet2']);
  expect(subnets(subnetGroup.Properties.SubnetIds)).toEqual(['IsolatedSubnet1', 'IsolatedSubnet2']);
});

test('the database keeps its subnets from stage 10 to 1k, so the upgrade does not replace it', () => {
  const subnetIds = (stage: UserStage) =>
    Object.values(built.get(stage)!.template.findResources('AWS::RDS::DBSubnetGroup'))[0].Properties
      .SubnetIds;
  expect(subnetIds(UserStage.USERS_1K)).toEqual(subnetIds(UserStage.USERS_10));
});

/** A VPC imported by attributes with only the subnets given, in two zones. */
function importedVpc(subnets: { public?: number; private?: number; isolated?: number }): ec2.IVpc {
  const ids = (kind: string, n = 0) => Array.from({ length: n }, (_, i) => `subnet-${kind}${i}`);
  return ec2.Vpc.fromVpcAttributes(new Stack(newApp(), 'Lookup'), 'Vpc', {
    vpcId: 'vpc-12345678',
    vpcCidrBlock: '10.20.0.0/16',
    availabilityZones: ['us-east-1a', 'us-east-1b'].slice(
      0,
      Math.max(subnets.public ?? 0, subnets.private ?? 0, subnets.isolated ?? 0, 1),
    ),
    publicSubnetIds: subnets.public ? ids('pub', subnets.public) : undefined,
    privateSubnetIds: subnets.private ? ids('priv', subnets.private) : undefined,
    isolatedSubnetIds: subnets.isolated ? ids('iso', subnets.isolated) : undefined,
  });
}

test.each([
  [
    UserStage.USERS_1,
    { private: 2 },
    "vpc must have a public subnet in an availability zone at stage '1': the single server has a public address, which CloudFront reaches; got 0 such subnets in 0 zones.",
  ],
  [
    UserStage.USERS_10,
    { public: 1, isolated: 1 },
    "vpc must have isolated or private subnets in 2 availability zones at stage '10': an RDS DB subnet group and an ElastiCache subnet group span at least two availability zones; got 1 such subnet in 1 zone.",
  ],
  [
    UserStage.USERS_1K,
    { public: 2, isolated: 2 },
    "vpc must have private subnets with a NAT route (PRIVATE_WITH_EGRESS) in 2 availability zones at stage '1k': the load balancer, its servers and the workers run there and install packages through the NAT; got 0 such subnets in 0 zones.",
  ],
])('at stage %s a VPC with %o fails naming what is missing', (stage, subnets, message) => {
  const vpc = importedVpc(subnets);
  expect(() => new StageStacks(vpc.stack.node.scope!, 'Shop', { stage, vpc })).toThrow(message);
});

test('a VPC with private subnets only takes the database there', () => {
  const vpc = importedVpc({ public: 2, private: 2 });
  const stacks = new StageStacks(vpc.stack.node.scope!, 'Shop', { stage: UserStage.USERS_1K, vpc });
  Template.fromStack(stacks.primary).hasResourceProperties('AWS::RDS::DBSubnetGroup', {
    SubnetIds: ['subnet-priv0', 'subnet-priv1'],
  });
});

test('natInstanceType with an existing VPC fails: NAT is the VPC owner’s', () => {
  const vpc = importedVpc({ public: 2, private: 2 });
  expect(
    () =>
      new StageStacks(vpc.stack.node.scope!, 'Shop', {
        stage: UserStage.USERS_1K,
        vpc,
        natInstanceType: new ec2.InstanceType('t4g.nano'),
      }),
  ).toThrow(/natInstanceType applies to the network the stack builds; with vpc, NAT is the VPC's own/);
});

test.each([
  [{ natGateways: 1 }, 'natGateways describes'],
  [{ cidr: '10.9.0.0/16', natGateways: 1 }, 'natGateways, cidr describe'],
])('StageNetwork with vpc refuses %o', (props, message) => {
  const vpc = importedVpc({ public: 2, private: 2 });
  expect(() => new StageNetwork(vpc.stack, 'Network', { vpc, ...props })).toThrow(message);
});

test("cdk-nag and the validator find nothing in the stage's stacks but the HTTP load balancer's known warning", () => {
  const app = newApp({ validate: true });
  const vpc = new ec2.Vpc(new Stack(app, 'Platform'), 'Vpc', { maxAzs: 2, natGateways: 1 });
  new StageStacks(app, 'Shop', { stage: UserStage.USERS_1M, vpc });
  const findings = complianceReportOf(app).findings.filter((f) => f.paths.some((p) => p.startsWith('Shop')));
  expect(findings.map((f) => f.rule)).toEqual(['Annotation::cdk-scale-stages:httpOnlyLoadBalancer']);
});
