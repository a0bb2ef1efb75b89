import { CfnMapping, RemovalPolicy, Stack, Tags, Token, Validations } from 'aws-cdk-lib/core';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { checkWholeNumber, ScaleStagesError } from '../private/errors';
import { VPC_ORIGIN_ZONE_IDS } from '../private/regions';
import { checkInstanceType } from '../private/servers';

/** Properties of a `StageNetwork`. */
export interface StageNetworkProps {
  /**
   * NAT gateways for the app subnets' outbound traffic. Zero keeps the app subnets isolated, which
   * suits stages 1 to 100, where the only server sits in a public subnet; a NAT gateway costs about
   * $33 a month, more than the whole of stage 1.
   *
   * @default 0
   */
  readonly natGateways?: number;
  /**
   * A NAT instance type to use instead of NAT gateways: a t4g.nano costs about $3 a month against a
   * gateway's $33, but it is one instance that you patch, without automatic failover.
   *
   * @default - NAT gateways
   */
  readonly natInstanceType?: ec2.InstanceType;
  /**
   * The VPC's IPv4 range, /16 to /18. It is create-only: changing it replaces every subnet and so
   * the database.
   *
   * @default '10.0.0.0/16'
   */
  readonly cidr?: string;
  /**
   * How long VPC flow logs are kept.
   *
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly flowLogRetention?: logs.RetentionDays;
  /**
   * An existing VPC to build in instead of a new one (`ec2.Vpc.fromLookup`, or a VPC of your own
   * stack). The tiers then take its subnets by type: the public ones for the stage-1 server, the
   * private ones with a NAT route for the fleet and the workers, and the isolated ones (else the
   * private ones) for the databases and caches. Its NAT, routes and flow logs stay yours, so
   * `natGateways`, `natInstanceType`, `cidr` and `flowLogRetention` do not apply.
   *
   * @default - a new VPC
   */
  readonly vpc?: ec2.IVpc;
}

/**
 * The network every stage shares (or an existing VPC, given as `vpc`), laid out once with all the tiers the top stage needs, over two
 * availability zones: public subnets (stage-1 server, NAT), private app subnets (queue workers)
 * and isolated data subnets (databases and caches).
 *
 * Later stages only add NAT gateways and, from stage 1k, the two private subnets of the load
 * balancer and its fleet (`addVpcOriginSubnets`), in address space left free for them; they never
 * re-carve subnets, because a subnet whose range changes is replaced, and with it the database
 * subnet group and the database.
 */
export class StageNetwork extends Construct {
  /** The subnet group name of the public tier. */
  public static readonly PUBLIC_SUBNETS = 'Public';
  /** The subnet group name of the private app tier. */
  public static readonly APP_SUBNETS = 'App';
  /** The subnet group name of the isolated data tier. */
  public static readonly DATA_SUBNETS = 'Data';
  /** The name tag of the subnets `addVpcOriginSubnets` adds. */
  public static readonly VPC_ORIGIN_SUBNETS = 'VpcOrigin';

  /** The VPC. */
  public readonly vpc: ec2.IVpc;
  /** The private app subnets, where the queue workers run. */
  public readonly appSubnets: ec2.SubnetSelection;
  /** The isolated data subnets, where databases and caches run. */
  public readonly dataSubnets: ec2.SubnetSelection;
  /** The log group of the VPC flow logs; undefined in an existing VPC, whose flow logs are its owner's. */
  public readonly flowLogGroup?: logs.LogGroup;

  private readonly cidr: string;
  /** Whether the VPC is an existing one, whose subnets this network only selects. */
  private readonly existing: boolean;
  private readonly natProvider?: ec2.NatProvider;
  private vpcOriginSubnets?: ec2.PrivateSubnet[];

  constructor(scope: Construct, id: string, props: StageNetworkProps = {}) {
    super(scope, id);
    if (props.vpc) {
      const given = (['natGateways', 'natInstanceType', 'cidr', 'flowLogRetention'] as const).filter(
        (prop) => props[prop] !== undefined,
      );
      if (given.length > 0) {
        throw new ScaleStagesError(
          `${given.join(', ')} describe${given.length === 1 ? 's' : ''} a network StageNetwork builds; an existing vpc keeps its own NAT, range and flow logs. Leave ${given.length === 1 ? 'it' : 'them'} out with vpc.`,
          this,
        );
      }
      this.vpc = props.vpc;
      this.existing = true;
      this.cidr = props.vpc.vpcCidrBlock;
      this.appSubnets = { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };
      this.dataSubnets = {
        subnetType:
          props.vpc.isolatedSubnets.length > 0
            ? ec2.SubnetType.PRIVATE_ISOLATED
            : ec2.SubnetType.PRIVATE_WITH_EGRESS,
      };
      return;
    }
    this.existing = false;
    this.appSubnets = { subnetGroupName: StageNetwork.APP_SUBNETS };
    this.dataSubnets = { subnetGroupName: StageNetwork.DATA_SUBNETS };
    const natGateways = props.natGateways ?? 0;
    checkWholeNumber(this, 'natGateways', natGateways, 0, 2, 'one per availability zone at most');
    const cidr = props.cidr ?? '10.0.0.0/16';
    this.cidr = cidr;
    const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr);
    const valid =
      match &&
      match.slice(1, 5).every((octet) => Number(octet) <= 255) &&
      Number(match[5]) >= 16 &&
      Number(match[5]) <= 18;
    if (!Token.isUnresolved(cidr) && !valid) {
      throw new ScaleStagesError(
        `cidr must be an IPv4 range from /16 to /18 (the three subnet tiers fill most of a /18), such as '10.0.0.0/16'; got '${cidr}'.`,
        this,
      );
    }

    if (props.natInstanceType) {
      if (natGateways === 0) {
        throw new ScaleStagesError(
          `natInstanceType '${props.natInstanceType}' needs natGateways of 1 or 2 (how many NAT instances); got natGateways 0, so there is nothing to make an instance of. StageStack adds NAT from stage 1k.`,
          this,
        );
      }
      checkInstanceType(this, props.natInstanceType, 'natInstanceType');
    }
    // A NAT instance takes traffic from inside the VPC only, never from the internet.
    const natInstances = props.natInstanceType
      ? ec2.NatProvider.instanceV2({
          instanceType: props.natInstanceType,
          defaultAllowedTraffic: ec2.NatTrafficDirection.OUTBOUND_ONLY,
        })
      : undefined;
    this.natProvider = natGateways > 0 ? (natInstances ?? ec2.NatProvider.gateway()) : undefined;
    const vpc = new ec2.Vpc(this, 'Vpc', {
      ipAddresses: ec2.IpAddresses.cidr(cidr),
      maxAzs: 2,
      natGateways,
      natGatewayProvider: this.natProvider,
      subnetConfiguration: [
        { name: StageNetwork.PUBLIC_SUBNETS, subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        {
          name: StageNetwork.APP_SUBNETS,
          subnetType: natGateways > 0 ? ec2.SubnetType.PRIVATE_WITH_EGRESS : ec2.SubnetType.PRIVATE_ISOLATED,
          cidrMask: 20,
        },
        { name: StageNetwork.DATA_SUBNETS, subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
      ],
      gatewayEndpoints: { S3: { service: ec2.GatewayVpcEndpointAwsService.S3 } },
    });
    this.vpc = vpc;

    if (natInstances) this.secureNatInstances(vpc, natInstances, cidr);

    this.flowLogGroup = new logs.LogGroup(this, 'FlowLogs', {
      retention: props.flowLogRetention ?? logs.RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    vpc.addFlowLog('FlowLog', {
      destination: ec2.FlowLogDestination.toCloudWatchLogs(this.flowLogGroup),
      trafficType: ec2.FlowLogTrafficType.REJECT,
    });
  }

  /**
   * Adds an interface endpoint for Secrets Manager in the data subnets, with private DNS, so that
   * what runs in subnets without a NAT (the database's rotation function) reaches Secrets Manager.
   * The whole VPC then reaches Secrets Manager through it. Each zone costs about $7.30 a month.
   * Calling it again returns the same endpoint.
   *
   * @param zones in how many availability zones (1 or 2): a second one keeps the endpoint up when
   * a zone fails
   */
  public addSecretsManagerEndpoint(zones: number = 2): ec2.InterfaceVpcEndpoint {
    checkWholeNumber(this, 'zones', zones, 1, 2, 'the network spans two availability zones');
    const existing = this.node.tryFindChild('SecretsManagerEndpoint');
    if (existing) return existing as ec2.InterfaceVpcEndpoint;
    const subnets = this.vpc.selectSubnets(this.dataSubnets).subnets.slice(0, zones);
    const endpoint = new ec2.InterfaceVpcEndpoint(this, 'SecretsManagerEndpoint', {
      vpc: this.vpc,
      service: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
      subnets: { subnets },
      privateDnsEnabled: true,
      open: false,
    });
    // Private DNS sends every Secrets Manager call in the VPC here, so the whole VPC may connect.
    endpoint.connections.allowDefaultPortFrom(ec2.Peer.ipv4(this.cidr), 'HTTPS from inside the VPC');
    if (Token.isUnresolved(this.cidr)) {
      // An existing VPC's range may be known only at deploy time, where the checks see no range.
      const reason = "The rule admits the VPC's own range, read from the existing VPC at deploy time.";
      for (const id of [
        'AwsSolutions-EC23',
        'NIST.800.53.R5-EC2RestrictedCommonPorts',
        'NIST.800.53.R5-EC2RestrictedSSH',
      ]) {
        Validations.of(endpoint).acknowledge({ id, reason });
      }
    }
    return endpoint;
  }

  /**
   * Adds two private subnets, with the network's NAT for their way out, in availability zones that
   * CloudFront VPC origins reach, and returns them: for an internal load balancer behind a VPC
   * origin and the servers it sends traffic to (a load balancer sends none to targets in zones it
   * is not in). Calling it again returns the same subnets.
   *
   * The other tiers' zones are the region's first two zone names (`Fn::GetAZs`), and each account
   * maps zone names to physical zones (zone IDs) its own way: in some accounts one of them is a
   * zone VPC origins exclude (use1-az3, usw1-az2, apne1-az3, apne2-az1, cac1-az3), where a VPC
   * origin fails to create. These subnets name their zones by zone ID instead, two per region that VPC origins
   * support, so they land in the same physical zones in every account. Each is a /22 at offset
   * 52.0 and 56.0 of the network's range, space the other tiers leave free in a /16 to /18.
   *
   * In an existing VPC this adds nothing and returns its private subnets with a NAT route: choose
   * that VPC's zones yourself (the CloudFront Developer Guide lists the zone IDs VPC origins exclude).
   */
  public addVpcOriginSubnets(): ec2.SubnetSelection {
    if (this.existing) return this.appSubnets;
    if (!this.vpcOriginSubnets) {
      const nat = this.natProvider;
      if (!nat) {
        throw new ScaleStagesError(
          'the load balancer and its servers need a way out to install packages, fetch the app and call AWS APIs, and this network has no NAT (natGateways 0). Give the network natGateways: 1 or 2, as StageStack does from stage 1k.',
          this,
        );
      }
      const region = Stack.of(this).region;
      if (!Token.isUnresolved(region) && !VPC_ORIGIN_ZONE_IDS[region]) {
        throw new ScaleStagesError(
          `a load balancer behind a CloudFront VPC origin needs a region where VPC origins reach load balancers; got '${region}' (choices: ${Object.keys(VPC_ORIGIN_ZONE_IDS).join(', ')}).`,
          this,
        );
      }
      if (Token.isUnresolved(this.cidr)) {
        throw new ScaleStagesError(
          'addVpcOriginSubnets needs the network cidr as a literal range such as 10.0.0.0/16, not a deploy-time value: it places the subnets in the space the other tiers leave free.',
          this,
        );
      }
      // Where the stack's region is only known at deploy time, CloudFormation looks it up.
      const zoneIds = new CfnMapping(this, 'VpcOriginZoneIds', {
        mapping: Object.fromEntries(
          Object.entries(VPC_ORIGIN_ZONE_IDS).map(([r, [first, second]]) => [r, { first, second }]),
        ),
        lazy: true,
      });
      const [a, b, c] = this.cidr.split('.').map(Number);
      this.vpcOriginSubnets = ['first', 'second'].map((zone, i) => {
        const zoneId = zoneIds.findInMap(region, zone);
        // The subnet's availabilityZone holds the zone ID: names differ from account to account.
        const subnet = new ec2.PrivateSubnet(this, `VpcOriginSubnet${i + 1}`, {
          vpcId: this.vpc.vpcId,
          availabilityZone: zoneId,
          cidrBlock: `${a}.${b}.${c + 52 + 4 * i}.0/22`,
          mapPublicIpOnLaunch: false,
        });
        // The tags the CDK gives the subnets of an ec2.Vpc, so tools that group subnets see this tier.
        Tags.of(subnet).add('aws-cdk:subnet-name', StageNetwork.VPC_ORIGIN_SUBNETS);
        Tags.of(subnet).add('aws-cdk:subnet-type', 'Private');
        const cfnSubnet = subnet.node.defaultChild as ec2.CfnSubnet;
        cfnSubnet.availabilityZone = undefined;
        cfnSubnet.availabilityZoneId = zoneId;
        nat.configureSubnet(subnet);
        return subnet;
      });
      // The S3 gateway endpoint serves these subnets too (package and app downloads stay in AWS).
      const s3Endpoint = this.vpc.node.findChild('S3').node.defaultChild as ec2.CfnVPCEndpoint;
      s3Endpoint.routeTableIds = [
        ...(s3Endpoint.routeTableIds ?? []),
        ...this.vpcOriginSubnets.map((subnet) => subnet.routeTable.routeTableId),
      ];
    }
    return { subnets: this.vpcOriginSubnets };
  }

  /** NAT instances take traffic from inside the VPC only and keep an encrypted root volume. */
  private secureNatInstances(vpc: ec2.Vpc, provider: ec2.NatInstanceProviderV2, cidr: string): void {
    provider.connections.allowFrom(ec2.Peer.ipv4(cidr), ec2.Port.allTraffic(), 'traffic from inside the VPC');
    for (const gateway of provider.configuredGateways) {
      const instance = vpc.node
        .findAll()
        .find((c): c is ec2.Instance => c instanceof ec2.Instance && c.instanceId === gateway.gatewayId);
      if (!instance) continue;
      (instance.node.defaultChild as ec2.CfnInstance).blockDeviceMappings = [
        { deviceName: '/dev/xvda', ebs: { encrypted: true, volumeType: 'gp3' } },
      ];
      Validations.of(instance).acknowledge({
        id: 'AwsSolutions-EC26',
        reason:
          "The root volume is encrypted (set above and tested); cdk-nag's check looks for a launch template this instance does not have.",
      });
      Validations.of(instance).acknowledge({
        id: 'AwsSolutions-EC28',
        reason: 'A NAT instance is the cost-saving option; detailed monitoring would add to what it saves.',
      });
      Validations.of(instance).acknowledge({
        id: 'AwsSolutions-EC29',
        reason: 'A NAT instance holds no data; termination protection would only block replacing it.',
      });
    }
  }
}
