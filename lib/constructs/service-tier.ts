import { Duration } from 'aws-cdk-lib/core';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { AppSource } from '../app-source';
import { IAppTier } from '../app-tier';
import { AppEnvironment } from '../private/app-environment';
import { checkWholeNumber, ScaleStagesError } from '../private/errors';
import { checkEgress, loadBalancedServers, ReleaseBake, serverSizing } from '../private/fleet';
import { LoadBalancedServersProps, LoadBalancedTier } from './load-balanced-tier';

/** Properties of a `ServiceTier`. */
export interface ServiceTierProps extends LoadBalancedServersProps {
  /** The load-balanced tier whose load balancer routes the service's paths to it. */
  readonly web: LoadBalancedTier;
  /** What the service's servers run. */
  readonly app: AppSource;
  /**
   * The paths the load balancer sends to the service, such as `['/ws/*']`: 1 to 5 patterns of at
   * most 128 characters, case-sensitive, with `*` and `?` as wildcards (an ALB path-pattern condition).
   * Every other path keeps going to `web`'s servers.
   */
  readonly pathPatterns: string[];
  /**
   * The listener rule's priority: unique on the listener, 1 to 50000; lower ones are evaluated first.
   */
  readonly priority: number;
  /**
   * Where the servers run.
   *
   * @default - the subnets of `web`'s servers
   */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /**
   * How long a server that leaves (a release, scaling in) keeps its open connections before the load
   * balancer closes them; it gets no new ones meanwhile. Long enough for clients to finish what they
   * do and reconnect elsewhere: a WebSocket connection lasts until then.
   *
   * @default Duration.minutes(5)
   */
  readonly deregistrationDelay?: Duration;
}

/**
 * A service split off the app onto servers of its own, behind the app's load balancer: the load
 * balancer sends the service's paths (such as `/ws/*`) to its target group and every other path to the
 * app, so the service scales, alarms and deploys on its own. Its servers are built as `LoadBalancedTier`'s
 * (Graviton, IMDSv2, encrypted root volume, Session Manager, the port open to the load balancer only),
 * are released as they are (one at a time, each baked before the next), scale on CPU alone (the load
 * balancer counts a WebSocket's requests once, when it opens), and drain their connections for
 * `deregistrationDelay` when they leave. Connect the data tiers to it as to the app tier (`connectApp`);
 * `StageOperations.monitorService` gives it alarms and widgets.
 */
export class ServiceTier extends Construct implements IAppTier {
  /** The service's Auto Scaling group. */
  public readonly autoScalingGroup: autoscaling.AutoScalingGroup;
  /** The service's target group, which the listener rule forwards to. */
  public readonly targetGroup: elbv2.ApplicationTargetGroup;
  /** The listener rule that sends `pathPatterns` to the service. */
  public readonly listenerRule: elbv2.ApplicationListenerRule;
  /** The servers' launch template. */
  public readonly launchTemplate: ec2.LaunchTemplate;
  /** What the servers run. */
  public readonly app: AppSource;
  /** The paths the service serves. */
  public readonly pathPatterns: string[];
  /** The most servers scaling may reach. */
  public readonly maxCapacity: number;
  /** The servers' security group. */
  public readonly connections: ec2.Connections;
  /** The servers' IAM role. */
  public readonly grantPrincipal: iam.IPrincipal;

  private readonly environment: AppEnvironment;
  private readonly releaseBake: ReleaseBake;

  constructor(scope: Construct, id: string, props: ServiceTierProps) {
    super(scope, id);
    this.app = props.app;
    this.pathPatterns = checkPathPatterns(this, props.pathPatterns);
    checkWholeNumber(this, 'priority', props.priority, 1, 50000);
    if (props.web.requiresOriginHeader) {
      throw new ScaleStagesError(
        "web requires an origin header (requireOriginHeader): its rule forwards every path to web's servers before a service's rule. Reach the load balancer through a CloudFront VPC origin instead.",
        this,
      );
    }
    const { instanceType, minCapacity, maxCapacity, targetCpu } = serverSizing(this, props);
    this.maxCapacity = maxCapacity;
    const deregistrationDelay = props.deregistrationDelay ?? Duration.minutes(5);
    checkWholeNumber(
      this,
      'deregistrationDelay (seconds)',
      deregistrationDelay.toSeconds(),
      0,
      3600,
      "the target group's deregistration delay",
    );
    const vpc = props.web.loadBalancer.vpc!;
    const vpcSubnets = props.vpcSubnets ?? props.web.vpcSubnets;
    checkEgress(this, vpc, vpcSubnets);

    const servers = loadBalancedServers(this, {
      vpc,
      vpcSubnets,
      instanceType,
      app: this.app,
      minCapacity,
      maxCapacity,
      securityGroupDescription: `ServiceTier ${id} servers: the app port from the load balancer only`,
      gracePeriod: Duration.minutes(5),
      releaseBakeTime: props.releaseBakeTime ?? Duration.minutes(10),
      deregistrationDelay,
    });
    this.releaseBake = servers.releaseBake;
    this.autoScalingGroup = servers.autoScalingGroup;
    this.launchTemplate = servers.launchTemplate;
    this.environment = servers.environment;
    this.connections = this.autoScalingGroup.connections;
    this.grantPrincipal = servers.role;
    this.targetGroup = servers.targetGroup;
    this.listenerRule = new elbv2.ApplicationListenerRule(this, 'Route', {
      listener: props.web.listener,
      priority: props.priority,
      conditions: [elbv2.ListenerCondition.pathPatterns(this.pathPatterns)],
      action: elbv2.ListenerAction.forward([this.targetGroup]),
    });
    this.autoScalingGroup.scaleOnCpuUtilization('Cpu', { targetUtilizationPercent: targetCpu });
  }

  /** Hands one environment variable to the service on every server. */
  public addEnvironment(name: string, value: string): void {
    this.environment.add(name, value);
  }

  /**
   * Alarms that each new server of a release watches during `releaseBakeTime`: one going into ALARM
   * rolls the release back.
   */
  public watchDuringReleases(...alarms: cloudwatch.IAlarm[]): void {
    this.releaseBake.watch(this, alarms);
  }
}

/** 1 to 5 ALB path patterns, each absolute, at most 128 characters, of the characters ALB allows. */
function checkPathPatterns(scope: Construct, patterns: string[]): string[] {
  // ELB User Guide, "Listener rules for your Application Load Balancer": path conditions.
  const valid = /^\/[A-Za-z0-9_\-.$/~"'@:+&()!,;=*?]{0,127}$/;
  const bad = patterns.find((p) => !valid.test(p));
  if (patterns.length < 1 || patterns.length > 5 || bad !== undefined || patterns.includes('/*')) {
    throw new ScaleStagesError(
      `pathPatterns must be 1 to 5 paths such as '/ws/*', each starting with '/', at most 128 characters, with * and ? as wildcards, and not '/*' (the app keeps its paths); got ${JSON.stringify(patterns)}.`,
      scope,
    );
  }
  return patterns;
}
