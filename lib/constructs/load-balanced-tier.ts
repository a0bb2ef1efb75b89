import { Annotations, Duration, RemovalPolicy, Validations } from 'aws-cdk-lib/core';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { AppSource } from '../app-source';
import { IAppTier } from '../app-tier';
import { AppEnvironment } from '../private/app-environment';
import { cloudFrontOriginFacing } from '../private/cloudfront-origin-facing';
import { logBucket } from '../private/buckets';
import { checkDays, checkWholeNumber, ScaleStagesError } from '../private/errors';
import { enableAccessLogs } from '../private/load-balancer-logs';
import { checkEgress, loadBalancedServers, ReleaseBake, serverSizing } from '../private/fleet';
import { markTier } from '../private/tiers';
import { StageNetwork } from './stage-network';

/** A known traffic peak, for `LoadBalancedTier.addScheduledPeak`. */
export interface ScheduledPeakProps {
  /** When the peak starts: the fleet grows to `minCapacity` servers then. */
  readonly start: autoscaling.Schedule;
  /** When the peak ends: the fleet's minimum returns to its usual value then. */
  readonly end: autoscaling.Schedule;
  /** How many servers at least during the peak. */
  readonly minCapacity: number;
  /**
   * The time zone of the schedules, such as 'Europe/Berlin'.
   *
   * @default 'UTC'
   */
  readonly timeZone?: string;
}

/** A header that proves a request came through the CDN, for `LoadBalancedTier.requireOriginHeader`. */
export interface OriginHeader {
  /** The header's name. */
  readonly name: string;
  /** The header's secret value (a deploy-time reference to Secrets Manager). */
  readonly value: string;
}

/**
 * How a load-balanced fleet's servers are sized, scaled and released: `LoadBalancedTier`'s and a
 * `ServiceTier`'s alike.
 */
export interface LoadBalancedServersProps {
  /**
   * The servers' instance type.
   *
   * @default - t4g.small (2 vCPU, 2 GiB)
   */
  readonly instanceType?: ec2.InstanceType;
  /**
   * The fewest servers; two or more keep the app up when one server or one availability zone fails.
   *
   * @default 2
   */
  readonly minCapacity?: number;
  /**
   * The most servers scaling may reach; it must leave room above `minCapacity` for rolling updates.
   *
   * @default 6
   */
  readonly maxCapacity?: number;
  /**
   * The average CPU use the fleet scales to hold.
   *
   * @default 60
   */
  readonly targetCpuUtilizationPercent?: number;
  /**
   * How long each new server of a release keeps watching before it tells CloudFormation the release
   * is good: its app's health check, and the alarms given to `watchDuringReleases` (`StageOperations`
   * gives the fleet's 5xx and unhealthy-host alarms). A miss, or one of them going into ALARM, rolls the
   * release back. Each batch of a rolling update takes this much longer, and so does the first deploy.
   * `Duration.minutes(0)` signals as soon as the app is healthy.
   *
   * @default Duration.minutes(10): long enough for the 5xx alarm's two 5-minute periods
   */
  readonly releaseBakeTime?: Duration;
}

/** Properties of a `LoadBalancedTier`. */
export interface LoadBalancedTierProps extends LoadBalancedServersProps {
  /**
   * The network. The internal load balancer and the servers share `vpcSubnets`; an internet-facing
   * load balancer goes in the public subnets.
   */
  readonly vpc: ec2.IVpc;
  /**
   * The app the servers run.
   *
   * @default - the demo app, `AppSource.demo()`
   */
  readonly app?: AppSource;
  /**
   * Where the servers and the internal load balancer run; the servers need outbound access (a NAT)
   * for packages and AWS APIs. Behind a CloudFront VPC origin, select subnets in zones VPC origins
   * support, in every account: zone IDs, not the region's first zone names.
   *
   * @default - in the network of a `StageNetwork`, its `addVpcOriginSubnets()`; otherwise the
   * subnet group named 'App'
   */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /**
   * The requests per server per minute the fleet scales to hold.
   *
   * @default 1000
   */
  readonly targetRequestsPerMinute?: number;
  /**
   * How long a new server may take to boot and start the app before failed health checks replace it.
   *
   * @default Duration.minutes(5)
   */
  readonly healthCheckGracePeriod?: Duration;
  /**
   * The load balancer's certificate. With one, the load balancer serves HTTPS on 443 (and, when
   * internet-facing, redirects HTTP to it); without one it serves plain HTTP on 80 and warns.
   *
   * @default - HTTP only
   */
  readonly certificate?: acm.ICertificate;
  /**
   * Whether the load balancer faces the internet from the public subnets. By default it is
   * internal, in the servers' subnets, and admits only CloudFront's origin-facing servers: a
   * CloudFront VPC origin (`CdnStatic`) reaches it without a public address.
   *
   * @default false
   */
  readonly internetFacing?: boolean;
  /**
   * Whether the load balancer refuses to be deleted. Turn it off before you delete the stack or
   * move below stage 1k.
   *
   * @default true
   */
  readonly deletionProtection?: boolean;
  /**
   * How long the load balancer's access logs are kept.
   *
   * @default Duration.days(90)
   */
  readonly logRetention?: Duration;
  /**
   * Extra environment variables for the app; `addEnvironment` adds more later.
   *
   * @default - only the variables the library sets (APP_PORT, AWS_REGION)
   */
  readonly environment?: { [name: string]: string };
}

/**
 * An Application Load Balancer in front of an Auto Scaling group of stateless servers: the web tier
 * from stage 1k. The load balancer is internal by default, reached by CloudFront through a VPC
 * origin, and has deletion protection.
 *
 * The servers run from a launch template (Graviton, IMDSv2, encrypted root volume, Session Manager
 * instead of SSH) in the private app subnets across availability zones, are replaced when the load
 * balancer's health check fails, scale on CPU and on requests per server, and are replaced one at a
 * time on updates without dropping below the minimum. Each new server reports to CloudFormation
 * once its app is healthy, so a bad release stops the update and rolls it back.
 */
export class LoadBalancedTier extends Construct implements IAppTier {
  /** The Application Load Balancer. */
  public readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  /** The listener that forwards to the servers (HTTPS with a certificate, HTTP without). */
  public readonly listener: elbv2.ApplicationListener;
  /** The servers' target group. */
  public readonly targetGroup: elbv2.ApplicationTargetGroup;
  /** The Auto Scaling group of servers. */
  public readonly autoScalingGroup: autoscaling.AutoScalingGroup;
  /** The servers' launch template. */
  public readonly launchTemplate: ec2.LaunchTemplate;
  /** The bucket that keeps the load balancer's access logs. */
  public readonly logBucket: s3.Bucket;
  /** The app the servers run. */
  public readonly app: AppSource;
  /** The servers' security group. */
  public readonly connections: ec2.Connections;
  /** The servers' IAM role. */
  public readonly grantPrincipal: iam.IPrincipal;
  /** Where the servers run (and the load balancer, unless it faces the internet). */
  public readonly vpcSubnets: ec2.SubnetSelection;

  private readonly environment: AppEnvironment;
  private readonly releaseBake: ReleaseBake;
  private readonly lbSecurityGroup: ec2.SecurityGroup;
  private readonly lbPeer: ec2.IPeer;
  private readonly https: boolean;
  private readonly minCapacity: number;
  /** The most servers scaling may reach. */
  public readonly maxCapacity: number;

  constructor(scope: Construct, id: string, props: LoadBalancedTierProps) {
    super(scope, id);
    this.app = props.app ?? AppSource.demo();
    const { instanceType, minCapacity, maxCapacity, targetCpu } = serverSizing(this, props);
    this.minCapacity = minCapacity;
    this.maxCapacity = maxCapacity;
    const targetRequests = props.targetRequestsPerMinute ?? 1000;
    const gracePeriod = props.healthCheckGracePeriod ?? Duration.minutes(5);
    const logRetentionDays = checkDays(
      this,
      'logRetention',
      props.logRetention ?? Duration.days(90),
      1,
      3650,
    );

    checkWholeNumber(this, 'targetRequestsPerMinute', targetRequests, 1, 1_000_000);
    if (gracePeriod.toSeconds() < 60 || gracePeriod.toSeconds() > 3600) {
      throw new ScaleStagesError(
        `healthCheckGracePeriod must be from 1 to 60 minutes (time to boot and start the app); got ${gracePeriod.toHumanString()}.`,
        this,
      );
    }
    const network = props.vpc.node.scope;
    const vpcSubnets =
      props.vpcSubnets ??
      (network instanceof StageNetwork
        ? network.addVpcOriginSubnets()
        : { subnetGroupName: StageNetwork.APP_SUBNETS });
    this.vpcSubnets = vpcSubnets;
    const selected = checkEgress(this, props.vpc, vpcSubnets);
    if (selected.length < 2) {
      throw new ScaleStagesError(
        'vpcSubnets must select subnets in at least 2 availability zones, so the fleet survives the loss of one.',
        this,
      );
    }

    this.logBucket = logBucket(this, logRetentionDays);

    const internetFacing = props.internetFacing ?? false;
    this.lbSecurityGroup = new ec2.SecurityGroup(this, 'LoadBalancerSecurityGroup', {
      vpc: props.vpc,
      description: internetFacing
        ? 'LoadBalancedTier: web traffic from anywhere to the load balancer'
        : 'LoadBalancedTier: web traffic from CloudFront origin-facing servers to the load balancer',
      allowAllOutbound: false,
    });
    this.lbPeer = internetFacing ? ec2.Peer.anyIpv4() : cloudFrontOriginFacing(this);
    if (internetFacing) {
      Validations.of(this.lbSecurityGroup).acknowledge({
        id: 'AwsSolutions-EC23',
        reason: 'internetFacing was asked for: a public load balancer accepts web traffic from anywhere.',
      });
    }
    this.loadBalancer = new elbv2.ApplicationLoadBalancer(this, 'LoadBalancer', {
      vpc: props.vpc,
      internetFacing,
      vpcSubnets: internetFacing ? { subnetType: ec2.SubnetType.PUBLIC } : vpcSubnets,
      securityGroup: this.lbSecurityGroup,
      dropInvalidHeaderFields: true,
      deletionProtection: props.deletionProtection ?? true,
    });
    enableAccessLogs(this.loadBalancer, this.logBucket, 'load-balancer');
    markTier(this.loadBalancer, 'loadBalancer');

    const servers = loadBalancedServers(this, {
      vpc: props.vpc,
      vpcSubnets,
      instanceType,
      app: this.app,
      minCapacity: this.minCapacity,
      maxCapacity: this.maxCapacity,
      securityGroupDescription: 'LoadBalancedTier servers: the app port from the load balancer only',
      gracePeriod,
      releaseBakeTime: props.releaseBakeTime ?? Duration.minutes(10),
      deregistrationDelay: Duration.seconds(30),
    });
    this.releaseBake = servers.releaseBake;
    this.autoScalingGroup = servers.autoScalingGroup;
    this.launchTemplate = servers.launchTemplate;
    this.environment = servers.environment;
    this.connections = this.autoScalingGroup.connections;
    this.grantPrincipal = servers.role;
    this.targetGroup = servers.targetGroup;
    this.https = Boolean(props.certificate);
    if (props.certificate) {
      this.listener = this.loadBalancer.addListener('Https', {
        port: 443,
        open: false,
        certificates: [props.certificate],
        sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS,
        defaultTargetGroups: [this.targetGroup],
      });
      this.lbSecurityGroup.addIngressRule(this.lbPeer, ec2.Port.tcp(443), 'HTTPS to the load balancer');
      // CloudFront reaches an internal load balancer on 443 only; a second rule naming its prefix
      // list would count 55 more against the security group's 60-rule quota.
      if (internetFacing) {
        this.loadBalancer.addRedirect({ open: false });
        this.lbSecurityGroup.addIngressRule(this.lbPeer, ec2.Port.tcp(80), 'HTTP, redirected to HTTPS');
      }
    } else {
      this.listener = this.loadBalancer.addListener('Http', {
        port: 80,
        open: false,
        defaultTargetGroups: [this.targetGroup],
      });
      this.lbSecurityGroup.addIngressRule(this.lbPeer, ec2.Port.tcp(80), 'HTTP to the load balancer');
      Annotations.of(this).addWarningV2(
        'cdk-scale-stages:httpOnlyLoadBalancer',
        'The load balancer serves plain HTTP; give certificate for HTTPS (behind CloudFront, viewers still get HTTPS).',
      );
    }

    this.autoScalingGroup.scaleOnCpuUtilization('Cpu', { targetUtilizationPercent: targetCpu });
    this.autoScalingGroup.scaleOnRequestCount('Requests', { targetRequestsPerMinute: targetRequests });

    this.environment.addAll(props.environment ?? {});
  }

  /**
   * Alarms that each new server of a release watches during `releaseBakeTime`: one going into ALARM
   * rolls the release back. The servers may read these alarms' states, and nothing else.
   */
  public watchDuringReleases(...alarms: cloudwatch.IAlarm[]): void {
    this.releaseBake.watch(this, alarms);
  }

  /** Hands one environment variable to the app on every server. */
  public addEnvironment(name: string, value: string): void {
    this.environment.add(name, value);
  }

  /**
   * Keeps more servers running through a known traffic peak (a launch, a daily rush): the minimum
   * rises to `minCapacity` at `start` and returns at `end`.
   */
  public addScheduledPeak(id: string, props: ScheduledPeakProps): void {
    checkWholeNumber(
      this,
      `scheduled peak '${id}' minCapacity`,
      props.minCapacity,
      this.minCapacity,
      this.maxCapacity,
    );
    const zone = props.timeZone;
    if (zone !== undefined && zone !== 'UTC' && !Intl.supportedValuesOf('timeZone').includes(zone)) {
      throw new ScaleStagesError(
        `scheduled peak '${id}' timeZone must be an IANA time zone such as 'Europe/Berlin' or 'UTC'; got '${zone}'.`,
        this,
      );
    }
    this.autoScalingGroup.scaleOnSchedule(`${id}Start`, {
      schedule: props.start,
      minCapacity: props.minCapacity,
      timeZone: props.timeZone,
    });
    this.autoScalingGroup.scaleOnSchedule(`${id}End`, {
      schedule: props.end,
      minCapacity: this.minCapacity,
      timeZone: props.timeZone,
    });
  }

  /**
   * Makes the load balancer serve only requests that carry a secret header, which the CDN adds to
   * the requests it forwards: everything else gets 403. The secret is generated in Secrets Manager.
   * Give the returned header to the CDN origin (`HttpOrigin`'s `customHeaders`), and deploy the
   * CDN change before this one takes effect (StageStack orders them).
   *
   * @param name the header's name
   */
  public requireOriginHeader(name: string = 'X-Origin-Verify'): OriginHeader {
    if (!/^X-[A-Za-z0-9-]+$/.test(name)) {
      throw new ScaleStagesError(`origin header name must look like 'X-Origin-Verify'; got '${name}'.`, this);
    }
    if (this.node.tryFindChild('OriginHeaderSecret')) {
      throw new ScaleStagesError(
        'requireOriginHeader was called twice; one origin header guards the load balancer.',
        this,
      );
    }
    const secret = new secretsmanager.Secret(this, 'OriginHeaderSecret', {
      description: 'The header value that proves a request to the load balancer came through CloudFront',
      generateSecretString: { excludePunctuation: true, passwordLength: 48 },
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(secret).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason:
        'CloudFront and the load balancer read the value at deploy time; rotating it means a redeploy, which an automatic rotation would not do.',
    });
    const value = secret.secretValue.unsafeUnwrap();
    Annotations.of(this.listener).acknowledgeWarning(
      '@aws-cdk/aws-elbv2:listenerExistingDefaultActionReplaced',
      'Replacing the forward-to-servers default with 403 is the point: only requests with the header are forwarded.',
    );
    this.listener.addAction('Default', {
      action: elbv2.ListenerAction.fixedResponse(403, {
        contentType: 'text/plain',
        messageBody: 'Forbidden',
      }),
    });
    this.listener.addAction('FromCdn', {
      priority: 1,
      conditions: [elbv2.ListenerCondition.httpHeader(name, [value])],
      action: elbv2.ListenerAction.forward([this.targetGroup]),
    });
    return { name, value };
  }

  /** Whether `requireOriginHeader` made the load balancer forward only requests with the CDN's header. */
  public get requiresOriginHeader(): boolean {
    return this.node.tryFindChild('OriginHeaderSecret') !== undefined;
  }

  /** The URL of the load balancer. */
  public get url(): string {
    return `${this.https ? 'https' : 'http'}://${this.loadBalancer.loadBalancerDnsName}`;
  }
}
