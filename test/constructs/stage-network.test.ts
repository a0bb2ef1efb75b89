import { Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { StageNetwork } from '../../lib';
import { VPC_ORIGIN_REGIONS } from '../../lib/private/regions';
import { newApp } from '../helpers';

function build(props: ConstructorParameters<typeof StageNetwork>[2] = {}) {
  const stack = new Stack(newApp(), 'Test');
  const network = new StageNetwork(stack, 'Network', props);
  return { network, template: Template.fromStack(stack) };
}

describe('StageNetwork defaults', () => {
  const { network, template } = build();

  test('three tiers over two AZs with fixed CIDRs', () => {
    template.hasResourceProperties('AWS::EC2::VPC', { CidrBlock: '10.0.0.0/16' });
    const subnets = Object.entries(template.findResources('AWS::EC2::Subnet')).map(([id, s]) => [
      id.replace(/Subnet[0-9A-F]{8}$/, ''),
      s.Properties.CidrBlock,
    ]);
    expect(subnets).toEqual([
      ['NetworkVpcPublicSubnet1', '10.0.0.0/24'],
      ['NetworkVpcPublicSubnet2', '10.0.1.0/24'],
      ['NetworkVpcAppSubnet1', '10.0.16.0/20'],
      ['NetworkVpcAppSubnet2', '10.0.32.0/20'],
      ['NetworkVpcDataSubnet1', '10.0.48.0/24'],
      ['NetworkVpcDataSubnet2', '10.0.49.0/24'],
    ]);
  });

  test('no NAT gateway, and no route to the internet from the app and data tiers', () => {
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    const routes = Object.keys(template.findResources('AWS::EC2::Route'));
    expect(routes.every((id) => id.startsWith('NetworkVpcPublicSubnet'))).toBe(true);
  });

  test('a free S3 gateway endpoint', () => {
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', { VpcEndpointType: 'Gateway' });
  });

  test('rejected traffic goes to flow logs kept 90 days', () => {
    template.hasResourceProperties('AWS::EC2::FlowLog', {
      TrafficType: 'REJECT',
      LogDestinationType: 'cloud-watch-logs',
    });
    template.hasResource('AWS::Logs::LogGroup', {
      Properties: { RetentionInDays: 90 },
      DeletionPolicy: 'Retain',
    });
  });

  test('subnet selections name the tiers', () => {
    expect(network.appSubnets).toEqual({ subnetGroupName: 'App' });
    expect(network.dataSubnets).toEqual({ subnetGroupName: 'Data' });
    expect(network.vpc.selectSubnets(network.dataSubnets).subnets).toHaveLength(2);
  });
});

describe('StageNetwork overrides', () => {
  test('NAT gateways give the app tier a default route; CIDRs stay the same', () => {
    const { template } = build({ natGateways: 1 });
    template.resourceCountIs('AWS::EC2::NatGateway', 1);
    template.hasResourceProperties('AWS::EC2::Route', {
      DestinationCidrBlock: '0.0.0.0/0',
      NatGatewayId: Match.anyValue(),
      RouteTableId: { Ref: Match.stringLikeRegexp('NetworkVpcAppSubnet1') },
    });
    template.hasResourceProperties('AWS::EC2::Subnet', { CidrBlock: '10.0.16.0/20' });
  });

  test('cidr and flow log retention', () => {
    const { template } = build({ cidr: '172.20.0.0/16', flowLogRetention: logs.RetentionDays.ONE_YEAR });
    template.hasResourceProperties('AWS::EC2::VPC', { CidrBlock: '172.20.0.0/16' });
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 365 });
  });
});

test.each([[-1], [3], [1.5]])('natGateways %p fails', (natGateways) => {
  expect(() => build({ natGateways })).toThrow(
    new RegExp(
      `natGateways must be a whole number from 0 to 2 \\(one per availability zone at most\\); got ${natGateways}`,
    ),
  );
});

test('adding NAT gateways later (stage 1k) keeps every subnet: same logical ids, same CIDRs', () => {
  const subnets = (natGateways: number) =>
    Object.fromEntries(
      Object.entries(build({ natGateways }).template.findResources('AWS::EC2::Subnet')).map(([id, s]) => [
        id,
        s.Properties.CidrBlock,
      ]),
    );
  expect(subnets(1)).toEqual(subnets(0));
  expect(Object.keys(subnets(0))).toHaveLength(6);
});

test.each([['10.0.0.0/24'], ['10.0.0.0'], ['300.0.0.0/16'], ['10.0.0.0/8'], ['fd00::/56']])(
  'cidr %p fails',
  (cidr) => {
    expect(() => build({ cidr })).toThrow(
      `Test/Network: cidr must be an IPv4 range from /16 to /18 (the three subnet tiers fill most of a /18), such as '10.0.0.0/16'; got '${cidr}'.`,
    );
  },
);

test('the smallest allowed range, /18, holds all three tiers', () => {
  const { template } = build({ cidr: '10.1.0.0/18' });
  template.resourceCountIs('AWS::EC2::Subnet', 6);
});

test('a NAT instance can replace the NAT gateway; it takes traffic from the VPC only and encrypts its root', () => {
  const { template } = build({ natGateways: 1, natInstanceType: new ec2.InstanceType('t4g.nano') });
  template.resourceCountIs('AWS::EC2::NatGateway', 0);
  template.hasResourceProperties('AWS::EC2::Instance', {
    InstanceType: 't4g.nano',
    SourceDestCheck: false,
    BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { Encrypted: true, VolumeType: 'gp3' } }],
  });
  template.hasResourceProperties('AWS::EC2::Route', {
    DestinationCidrBlock: '0.0.0.0/0',
    InstanceId: Match.anyValue(),
    RouteTableId: { Ref: Match.stringLikeRegexp('NetworkVpcAppSubnet1') },
  });
  template.hasResourceProperties('AWS::EC2::SecurityGroup', {
    SecurityGroupIngress: [Match.objectLike({ IpProtocol: '-1', CidrIp: '10.0.0.0/16' })],
  });
  const groups = Object.values(template.findResources('AWS::EC2::SecurityGroup'));
  expect(
    groups.every(
      (g) =>
        !(g.Properties.SecurityGroupIngress ?? []).some((r: { CidrIp?: string }) => r.CidrIp === '0.0.0.0/0'),
    ),
  ).toBe(true);
});

describe('addSecretsManagerEndpoint', () => {
  test('an interface endpoint with private DNS in the data subnets, open to the VPC range only', () => {
    const stack = new Stack(newApp(), 'Test');
    const network = new StageNetwork(stack, 'Network', { cidr: '10.8.0.0/16' });
    const endpoint = network.addSecretsManagerEndpoint(1);
    expect(network.addSecretsManagerEndpoint(1)).toBe(endpoint);
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::EC2::VPCEndpoint', 2);
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcEndpointType: 'Interface',
      PrivateDnsEnabled: true,
      SubnetIds: [{ Ref: Match.stringLikeRegexp('^NetworkVpcDataSubnet1') }],
    });
    template.hasResourceProperties('AWS::EC2::SecurityGroup', {
      SecurityGroupIngress: [Match.objectLike({ CidrIp: '10.8.0.0/16', FromPort: 443, ToPort: 443 })],
    });
  });

  test('two zones by default', () => {
    const stack = new Stack(newApp(), 'Test');
    new StageNetwork(stack, 'Network').addSecretsManagerEndpoint();
    Template.fromStack(stack).hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcEndpointType: 'Interface',
      SubnetIds: [
        { Ref: Match.stringLikeRegexp('^NetworkVpcDataSubnet1') },
        { Ref: Match.stringLikeRegexp('^NetworkVpcDataSubnet2') },
      ],
    });
  });

  test.each([0, 3, 1.5])('zones %p fails', (zones) => {
    const network = new StageNetwork(new Stack(newApp(), 'Test'), 'Network');
    expect(() => network.addSecretsManagerEndpoint(zones)).toThrow(
      new RegExp(`zones must be a whole number from 1 to 2 .*got ${zones}`),
    );
  });
});

describe('addVpcOriginSubnets', () => {
  const excluded = ['use1-az3', 'usw1-az2', 'apne1-az3', 'apne2-az1', 'cac1-az3'];

  function withOriginSubnets(props: ConstructorParameters<typeof StageNetwork>[2], region?: string) {
    const stack = new Stack(newApp(), 'Test', { env: region ? { region } : undefined });
    const network = new StageNetwork(stack, 'Network', { natGateways: 2, ...props });
    const selection = network.addVpcOriginSubnets();
    return { stack, network, selection, template: Template.fromStack(stack) };
  }

  describe('in a stack whose region is known at deploy time only', () => {
    const { network, selection, template } = withOriginSubnets({});

    test('two /22 subnets in the space the other tiers leave free, named by zone ID, not zone name', () => {
      const subnets = template.findResources('AWS::EC2::Subnet', {
        Properties: { AvailabilityZoneId: Match.anyValue() },
      });
      expect(
        Object.values(subnets).map((s) => [s.Properties.CidrBlock, s.Properties.AvailabilityZone]),
      ).toEqual([
        ['10.0.52.0/22', undefined],
        ['10.0.56.0/22', undefined],
      ]);
      const [mapping] = Object.keys(template.toJSON().Mappings);
      expect(mapping).toMatch(/^NetworkVpcOriginZoneIds/);
      expect(Object.values(subnets).map((s) => s.Properties.AvailabilityZoneId)).toEqual(
        ['first', 'second'].map((key) => ({ 'Fn::FindInMap': [mapping, { Ref: 'AWS::Region' }, key] })),
      );
    });

    test('the mapping holds two different zone IDs per VPC-origin region, none of them excluded', () => {
      const [mapping] = Object.values(template.toJSON().Mappings) as Record<
        string,
        { first: string; second: string }
      >[];
      expect(Object.keys(mapping).sort()).toEqual([...VPC_ORIGIN_REGIONS].sort());
      for (const [region, { first, second }] of Object.entries(mapping)) {
        expect(first).not.toBe(second);
        for (const id of [first, second]) {
          expect(excluded).not.toContain(id);
          // A zone ID starts with its region's prefix: use1 for us-east-1, apne2 for ap-northeast-2.
          const [area, direction, number] = region.split('-');
          const prefix = new RegExp(`^${area}${direction[0]}\\w*${number}-az\\d$`);
          expect(id).toMatch(prefix);
        }
      }
    });

    test('each gets the NAT for its way out, and the S3 gateway endpoint serves it', () => {
      const routeTables = (selection.subnets ?? []).map((s) => s.routeTable.routeTableId);
      expect(routeTables).toHaveLength(2);
      template.resourcePropertiesCountIs(
        'AWS::EC2::Route',
        { DestinationCidrBlock: '0.0.0.0/0', NatGatewayId: Match.anyValue() },
        4, // two app subnets and these two
      );
      template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
        VpcEndpointType: 'Gateway',
        RouteTableIds: Match.arrayWith([
          { Ref: Match.stringLikeRegexp('^NetworkVpcOriginSubnet1RouteTable') },
        ]),
      });
    });

    test('calling it again returns the same subnets', () => {
      expect(network.addVpcOriginSubnets().subnets).toBe(selection.subnets);
    });
  });

  test('in a stack of a known region the zone IDs are written out', () => {
    const { template } = withOriginSubnets({ cidr: '10.3.0.0/16' }, 'us-west-1');
    const subnets = template.findResources('AWS::EC2::Subnet', {
      Properties: { AvailabilityZoneId: Match.anyValue() },
    });
    expect(
      Object.values(subnets).map((s) => [s.Properties.CidrBlock, s.Properties.AvailabilityZoneId]),
    ).toEqual([
      ['10.3.52.0/22', 'usw1-az1'],
      ['10.3.56.0/22', 'usw1-az3'],
    ]);
    expect(template.toJSON().Mappings).toBeUndefined();
  });

  test('in the smallest range, /18 at a higher base, the subnets stay inside it', () => {
    const { template } = withOriginSubnets({ cidr: '10.0.64.0/18' });
    const cidrs = Object.values(template.findResources('AWS::EC2::Subnet')).map(
      (s) => s.Properties.CidrBlock,
    );
    expect(cidrs).toEqual(expect.arrayContaining(['10.0.116.0/22', '10.0.120.0/22']));
    expect(new Set(cidrs).size).toBe(8);
  });

  test('a network without NAT fails: the servers behind the load balancer need a way out', () => {
    const network = new StageNetwork(new Stack(newApp(), 'Test'), 'Network');
    expect(() => network.addVpcOriginSubnets()).toThrow(
      /Test\/Network: the load balancer and its servers need a way out .*natGateways 0/,
    );
  });

  test('a region where VPC origins do not reach load balancers fails, naming the choices', () => {
    const network = new StageNetwork(
      new Stack(newApp(), 'Test', { env: { region: 'us-gov-west-1' } }),
      'Network',
      {
        natGateways: 1,
      },
    );
    expect(() => network.addVpcOriginSubnets()).toThrow(
      /needs a region where VPC origins reach load balancers; got 'us-gov-west-1' \(choices: us-east-1, /,
    );
  });
});
