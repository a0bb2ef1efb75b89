import { RemovalPolicy, Token, Validations } from 'aws-cdk-lib/core';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { checkWholeNumber, ScaleStagesError } from '../private/errors';
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
}

/**
 * The network every stage shares, laid out once with all the tiers the top stage needs, over two
 * availability zones: public subnets (load balancer, stage-1 server, NAT), private app subnets
 * (the server fleet from stage 1k) and isolated data subnets (databases and caches).
 *
 * Later stages only add NAT gateways; they never re-carve subnets, because a subnet whose range
 * changes is replaced, and with it the database subnet group and the database.
 */
export class StageNetwork extends Construct {
  /** The subnet group name of the public tier. */
  public static readonly PUBLIC_SUBNETS = 'Public';
  /** The subnet group name of the private app tier. */
  public static readonly APP_SUBNETS = 'App';
  /** The subnet group name of the isolated data tier. */
  public static readonly DATA_SUBNETS = 'Data';

  /** The VPC. */
  public readonly vpc: ec2.Vpc;
  /** The private app subnets, where the server fleet runs from stage 1k. */
  public readonly appSubnets: ec2.SubnetSelection = { subnetGroupName: StageNetwork.APP_SUBNETS };
  /** The isolated data subnets, where databases and caches run. */
  public readonly dataSubnets: ec2.SubnetSelection = { subnetGroupName: StageNetwork.DATA_SUBNETS };
  /** The log group of the VPC flow logs. */
  public readonly flowLogGroup: logs.LogGroup;

  private readonly cidr: string;

  constructor(scope: Construct, id: string, props: StageNetworkProps = {}) {
    super(scope, id);
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
    this.vpc = new ec2.Vpc(this, 'Vpc', {
      ipAddresses: ec2.IpAddresses.cidr(cidr),
      maxAzs: 2,
      natGateways,
      natGatewayProvider: natInstances,
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

    if (natInstances) this.secureNatInstances(natInstances, cidr);

    this.flowLogGroup = new logs.LogGroup(this, 'FlowLogs', {
      retention: props.flowLogRetention ?? logs.RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.vpc.addFlowLog('FlowLog', {
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
    return endpoint;
  }

  /** NAT instances take traffic from inside the VPC only and keep an encrypted root volume. */
  private secureNatInstances(provider: ec2.NatInstanceProviderV2, cidr: string): void {
    provider.connections.allowFrom(ec2.Peer.ipv4(cidr), ec2.Port.allTraffic(), 'traffic from inside the VPC');
    for (const gateway of provider.configuredGateways) {
      const instance = this.vpc.node
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
