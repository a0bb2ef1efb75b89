import { Duration, Lazy, Stack, Token, Validations } from 'aws-cdk-lib/core';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import type { AppSource } from '../app-source';
import { AppEnvironment } from './app-environment';
import { checkWholeNumber, ScaleStagesError } from './errors';
import {
  acknowledgeSessionManagerPolicy,
  checkInstanceType,
  allowWebEgress,
  encryptedRootVolume,
  prepareServerCommands,
  serverImage,
  startAppCommands,
  bindApp,
} from './servers';
import { compressedShellScript } from './assets';
import { checkUserDataSize } from './user-data-size';
import { markTier } from './tiers';

/** What a fleet of app servers is made of. */
export interface ServerFleetProps {
  readonly vpc: ec2.IVpc;
  readonly vpcSubnets: ec2.SubnetSelection;
  readonly instanceType: ec2.InstanceType;
  readonly app: AppSource;
  readonly minCapacity: number;
  readonly maxCapacity: number;
  /** The servers' security group's description: who may reach them. */
  readonly securityGroupDescription: string;
  /** Health checks beyond EC2's, such as the load balancer's. */
  readonly healthChecks?: autoscaling.HealthChecks;
  /** How many servers a rolling update keeps in service. */
  readonly minInstancesInService: number;
  /** Metrics of the group that CloudWatch collects, for scaling on them. */
  readonly groupMetrics?: autoscaling.GroupMetrics[];
  /** Commands a new server runs once its app is healthy, before it signals CloudFormation. */
  readonly afterApp?: string[];
  /**
   * How long creation and each batch of a rolling update wait for a new server's signal: its boot and
   * `afterApp`. At most an hour (AutoScalingRollingUpdate `PauseTime`).
   *
   * @default Duration.minutes(15)
   */
  readonly signalTimeout?: Duration;
}

/** A fleet of app servers, and where to add to its environment. */
export interface ServerFleet {
  readonly autoScalingGroup: autoscaling.AutoScalingGroup;
  readonly launchTemplate: ec2.LaunchTemplate;
  readonly role: iam.Role;
  readonly securityGroup: ec2.SecurityGroup;
  readonly environment: AppEnvironment;
}

/**
 * An Auto Scaling group of Graviton servers that run `app` from their user data (IMDSv2, encrypted
 * root volume, SSM access, web egress only), each reporting to CloudFormation whether its app
 * became healthy, so creation and rolling updates wait for it and roll back a release that never
 * gets healthy. `LoadBalancedTier` and `QueueWorkers` share it; its construct ids are those
 * `LoadBalancedTier` has always had, so its logical ids do not change.
 */
export function serverFleet(scope: Construct, props: ServerFleetProps): ServerFleet {
  const securityGroup = new ec2.SecurityGroup(scope, 'ServerSecurityGroup', {
    vpc: props.vpc,
    description: props.securityGroupDescription,
    allowAllOutbound: false,
  });
  allowWebEgress(securityGroup);
  const role = new iam.Role(scope, 'ServerRole', {
    assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
    managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('AmazonSSMManagedInstanceCore')],
  });
  acknowledgeSessionManagerPolicy(role);

  const environment = new AppEnvironment(scope);
  const userData = ec2.UserData.forLinux();
  const launchTemplate = new ec2.LaunchTemplate(scope, 'LaunchTemplate', {
    instanceType: props.instanceType,
    machineImage: serverImage(props.instanceType),
    userData,
    securityGroup,
    role,
    requireImdsv2: true,
    blockDevices: [encryptedRootVolume()],
  });
  const autoScalingGroup = new autoscaling.AutoScalingGroup(scope, 'Fleet', {
    vpc: props.vpc,
    vpcSubnets: props.vpcSubnets,
    launchTemplate,
    minCapacity: props.minCapacity,
    maxCapacity: props.maxCapacity,
    healthChecks: props.healthChecks,
    groupMetrics: props.groupMetrics,
    signals: autoscaling.Signals.waitForMinCapacity({ timeout: props.signalTimeout ?? Duration.minutes(15) }),
    updatePolicy: autoscaling.UpdatePolicy.rollingUpdate({
      maxBatchSize: 1,
      minInstancesInService: props.minInstancesInService,
      waitOnResourceSignals: true,
      pauseTime: props.signalTimeout ?? Duration.minutes(15),
    }),
  });
  // The launch template is drawn in the fleet: it holds the servers' type, security group and role.
  markTier(autoScalingGroup, 'fleet', launchTemplate);
  Validations.of(autoScalingGroup).acknowledge({
    id: 'AwsSolutions-AS3',
    reason:
      'Scaling notifications need an SNS topic and someone reading it; the operations construct adds alarms.',
  });

  environment.add('APP_PORT', String(props.app.port));
  environment.add('AWS_REGION', Stack.of(scope).region);
  // The environment file is written lazily, so variables added later still reach it.
  bindApp(scope, props.app, environment, role);
  checkUserDataSize(launchTemplate, userData);
  userData.addCommands(
    ...prepareServerCommands(),
    ...startAppCommands(environment, props.app),
    ...(props.afterApp ?? []),
  );
  userData.addSignalOnExitCommand(autoScalingGroup);
  return { autoScalingGroup, launchTemplate, role, securityGroup, environment };
}

/**
 * Throws when `vpcSubnets` selects only isolated subnets: servers there could not install packages,
 * fetch the app or call AWS APIs, and would never become healthy. Returns the selected subnets.
 */
export function checkEgress(scope: Construct, vpc: ec2.IVpc, vpcSubnets: ec2.SubnetSelection): ec2.ISubnet[] {
  const selected = vpc.selectSubnets(vpcSubnets).subnets;
  const isolated = new Set(vpc.isolatedSubnets.map((subnet) => subnet.subnetId));
  if (selected.length > 0 && selected.every((subnet) => isolated.has(subnet.subnetId))) {
    throw new ScaleStagesError(
      'vpcSubnets selects isolated subnets: the servers would have no way out to install packages, fetch the app or call AWS APIs, and would never become healthy. Give the network a NAT (StageNetwork natGateways: 1, as StageStack does from stage 1k) or select subnets with egress.',
      scope,
    );
  }
  return selected;
}

/**
 * A load-balanced fleet's release bake: each new server of a release watches its health check and the
 * alarms pushed to `alarms` for `bake` before it signals CloudFormation; a miss, or an alarm going into
 * ALARM, rolls the release back. What `serverFleet` needs for it (`afterApp`, `signalTimeout`), and
 * `watch`, which lets the servers read those alarms' states and nothing else.
 */
export class ReleaseBake {
  /** The commands a new server runs once its app is healthy. */
  public readonly afterApp: string[];
  /** How long a rolling update's batch waits for a new server: boot, then the bake. */
  public readonly signalTimeout: Duration;
  private readonly alarms: cloudwatch.IAlarm[] = [];

  constructor(scope: Construct, bake: Duration) {
    if (
      !Token.isUnresolved(bake.toSeconds()) &&
      (bake.toSeconds() < 0 || bake.toMinutes({ integral: false }) > 45)
    ) {
      throw new ScaleStagesError(
        `releaseBakeTime must be from 0 to 45 minutes (a server's boot and bake must fit the rolling update's one-hour signal timeout); got ${bake.toHumanString()}.`,
        scope,
      );
    }
    this.afterApp = [
      `export RELEASE_BAKE_SECONDS='${bake.toSeconds()}' AWS_REGION='${Stack.of(scope).region}' RELEASE_ALARMS="${Lazy.string({ produce: () => this.alarms.map((a) => a.alarmName).join(' ') })}"`,
      compressedShellScript('scripts/release-bake.sh'),
    ];
    this.signalTimeout = Duration.minutes(15).plus(bake);
  }

  /** Alarms each new server of a release watches during the bake; `principal` may read their states. */
  public watch(principal: iam.IGrantable, alarms: cloudwatch.IAlarm[]): void {
    this.alarms.push(...alarms);
    principal.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['cloudwatch:DescribeAlarms'],
        resources: alarms.map((a) => a.alarmArn),
      }),
    );
  }
}

/**
 * The target group of a load-balanced app's servers: HTTP to the app's port, its health check path
 * every 15 seconds (healthy after 2 answers of 200, unhealthy after 3 misses), and `deregistrationDelay`
 * for requests and connections in flight to finish when a server leaves.
 */
export function appTargetGroup(
  scope: Construct,
  vpc: ec2.IVpc,
  app: AppSource,
  fleet: autoscaling.AutoScalingGroup,
  deregistrationDelay: Duration,
): elbv2.ApplicationTargetGroup {
  return new elbv2.ApplicationTargetGroup(scope, 'TargetGroup', {
    vpc,
    port: app.port,
    protocol: elbv2.ApplicationProtocol.HTTP,
    targets: [fleet],
    deregistrationDelay,
    healthCheck: {
      path: app.healthCheckPath,
      healthyHttpCodes: '200',
      interval: Duration.seconds(15),
      healthyThresholdCount: 2,
      unhealthyThresholdCount: 3,
    },
  });
}

/**
 * A load-balanced fleet's instance type, size and CPU target, defaulted and checked: at least two servers
 * (a server or a zone may fail), room above the minimum for a rolling update, a Graviton class.
 */
export function serverSizing(
  scope: Construct,
  props: {
    readonly instanceType?: ec2.InstanceType;
    readonly minCapacity?: number;
    readonly maxCapacity?: number;
    readonly targetCpuUtilizationPercent?: number;
  },
): { instanceType: ec2.InstanceType; minCapacity: number; maxCapacity: number; targetCpu: number } {
  const instanceType =
    props.instanceType ?? ec2.InstanceType.of(ec2.InstanceClass.T4G, ec2.InstanceSize.SMALL);
  const minCapacity = props.minCapacity ?? 2;
  const maxCapacity = props.maxCapacity ?? 6;
  const targetCpu = props.targetCpuUtilizationPercent ?? 60;
  checkWholeNumber(
    scope,
    'minCapacity',
    minCapacity,
    2,
    100,
    'two keep the app up when a server or a zone fails',
  );
  checkWholeNumber(
    scope,
    'maxCapacity',
    maxCapacity,
    minCapacity + 1,
    500,
    'above minCapacity, so a rolling update can start a new server before stopping an old one',
  );
  checkWholeNumber(scope, 'targetCpuUtilizationPercent', targetCpu, 10, 90);
  checkInstanceType(scope, instanceType);
  return { instanceType, minCapacity, maxCapacity, targetCpu };
}

/** What `loadBalancedServers` builds: the fleet, where its release bake is, and its target group. */
export interface LoadBalancedServers extends ServerFleet {
  readonly releaseBake: ReleaseBake;
  readonly targetGroup: elbv2.ApplicationTargetGroup;
}

/**
 * The servers of a load balancer's target group, as `LoadBalancedTier` and `ServiceTier` build them: a
 * `serverFleet` whose servers the load balancer's health check also replaces (after `gracePeriod`), kept
 * at `minCapacity` in service while a release rolls one server at a time and each new one bakes
 * (`ReleaseBake`), whose desired and in-service counts CloudWatch collects (`StageOperations` tells from
 * them when the fleet is at its maximum), behind an `appTargetGroup`.
 */
export function loadBalancedServers(
  scope: Construct,
  props: Omit<
    ServerFleetProps,
    'healthChecks' | 'minInstancesInService' | 'afterApp' | 'signalTimeout' | 'groupMetrics'
  > & {
    readonly gracePeriod: Duration;
    readonly releaseBakeTime: Duration;
    readonly deregistrationDelay: Duration;
  },
): LoadBalancedServers {
  const releaseBake = new ReleaseBake(scope, props.releaseBakeTime);
  const fleet = serverFleet(scope, {
    ...props,
    healthChecks: autoscaling.HealthChecks.withAdditionalChecks({
      additionalTypes: [autoscaling.AdditionalHealthCheckType.ELB],
      gracePeriod: props.gracePeriod,
    }),
    minInstancesInService: props.minCapacity,
    afterApp: releaseBake.afterApp,
    signalTimeout: releaseBake.signalTimeout,
    groupMetrics: [
      new autoscaling.GroupMetrics(
        autoscaling.GroupMetric.DESIRED_CAPACITY,
        autoscaling.GroupMetric.IN_SERVICE_INSTANCES,
      ),
    ],
  });
  const targetGroup = appTargetGroup(
    scope,
    props.vpc,
    props.app,
    fleet.autoScalingGroup,
    props.deregistrationDelay,
  );
  return { ...fleet, releaseBake, targetGroup };
}
