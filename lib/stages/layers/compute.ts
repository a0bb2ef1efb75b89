/**
 * The compute layer: the single server of stages 1 to 100, or from stage 1k the load-balanced fleet,
 * which every region of stage 10m builds alike.
 */
import { CfnOutput, Size, Stack } from 'aws-cdk-lib/core';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';
import { AppSource } from '../../app-source';
import { LoadBalancedTier } from '../../constructs/load-balanced-tier';
import { SingleServer } from '../../constructs/single-server';
import { StageNetwork } from '../../constructs/stage-network';
import { ScaleStagesError } from '../../private/errors';
import { POSTGRES_VERSIONS, StageSizing } from '../stage-table';

/** The settings of the fleet layer, named as both stacks' props name them. */
export interface FleetSettings {
  readonly app?: AppSource;
  readonly serverInstanceType?: ec2.InstanceType;
  readonly webMinCapacity?: number;
  readonly webMaxCapacity?: number;
  readonly loadBalancerCertificate?: acm.ICertificate;
  readonly loadBalancerDomainName?: string;
}

/** The certificate and the name it covers go together: CloudFront reaches HTTPS at that name. */
export function checkFleetSettings(settings: FleetSettings): void {
  if (Boolean(settings.loadBalancerCertificate) !== Boolean(settings.loadBalancerDomainName)) {
    throw new ScaleStagesError(
      'loadBalancerCertificate and loadBalancerDomainName go together: CloudFront reaches an HTTPS load balancer at the name its certificate covers. Give both, or neither for HTTP.',
    );
  }
}

/**
 * The load-balanced fleet: an internal load balancer reached through a CloudFront VPC origin, in the
 * network's VPC-origin subnets (zones VPC origins reach in every account), with its servers.
 */
export function fleetLayer(
  scope: Construct,
  network: StageNetwork,
  sizing: NonNullable<StageSizing['web']>,
  settings: FleetSettings,
): LoadBalancedTier {
  return new LoadBalancedTier(scope, 'Web', {
    vpc: network.vpc,
    vpcSubnets: network.addVpcOriginSubnets(),
    app: settings.app,
    instanceType: settings.serverInstanceType ?? new ec2.InstanceType(sizing.instanceType),
    minCapacity: settings.webMinCapacity ?? sizing.minCapacity,
    maxCapacity: settings.webMaxCapacity ?? sizing.maxCapacity,
    certificate: settings.loadBalancerCertificate,
  });
}

/** Stages 1 to 100: one server with a data volume, which hosts the database until stage 10 moves it. */
export function serverLayer(
  stack: Stack,
  network: StageNetwork,
  sizing: NonNullable<StageSizing['server']>,
  settings: {
    readonly app?: AppSource;
    readonly serverInstanceType?: ec2.InstanceType;
    readonly dataVolumeSize?: Size;
  },
  localDatabase: boolean,
): SingleServer {
  const server = new SingleServer(stack, 'Server', {
    vpc: network.vpc,
    app: settings.app,
    instanceType: settings.serverInstanceType ?? new ec2.InstanceType(sizing.instanceType),
    dataVolumeSize: settings.dataVolumeSize ?? Size.gibibytes(sizing.dataVolumeGiB),
    localDatabase,
    postgresMajorVersion: POSTGRES_VERSIONS.server,
  });
  new CfnOutput(stack, 'ServerInstanceId', {
    description: 'Shell access: aws ssm start-session --target <this id>',
    value: server.instance.instanceId,
  });
  return server;
}
