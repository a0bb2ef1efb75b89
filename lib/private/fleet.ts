import { Duration, Stack, Validations } from 'aws-cdk-lib/core';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import type { AppSource } from '../app-source';
import { AppEnvironment } from './app-environment';
import { ScaleStagesError } from './errors';
import {
  acknowledgeSessionManagerPolicy,
  allowWebEgress,
  encryptedRootVolume,
  prepareServerCommands,
  serverImage,
  startAppCommands,
  bindApp,
} from './servers';
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
