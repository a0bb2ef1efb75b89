/**
 * The services layer (stage 1m onwards, opt-in): each service of `StageStackProps.services` on servers
 * of its own behind the fleet's load balancer, an app tier like the fleet (the data layers connect
 * both), and a behavior of the distribution for its path.
 */
import { Duration } from 'aws-cdk-lib/core';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';
import { AppSource } from '../../app-source';
import { CdnStatic } from '../../constructs/cdn-static';
import { LoadBalancedTier } from '../../constructs/load-balanced-tier';
import { ServiceTier } from '../../constructs/service-tier';
import { ScaleStagesError } from '../../private/errors';
import { StageSizing } from '../stage-table';

/** One service split off the app: a `StageStackProps.services` entry. */
export interface StageService {
  /**
   * The service's name: 1 to 20 lowercase letters, digits and hyphens, starting with a letter. It names
   * the service's constructs (`Services/<name>`), alarms and dashboard widgets: renaming a service
   * replaces its servers.
   */
  readonly name: string;
  /** What the service's servers run, such as `AppSource.demoRealtime()`. */
  readonly app: AppSource;
  /**
   * The paths the service serves, such as `/ws/*`: the load balancer and the distribution send them to
   * the service, every other path to the app. It must not fall under a path the distribution matches
   * first (`/api/*`, `/media/*`): give the service a prefix of its own.
   */
  readonly pathPattern: string;
  /**
   * The servers' instance type.
   *
   * @default - the fleet's, from the stage table: m7g.large at stage 1m
   */
  readonly instanceType?: ec2.InstanceType;
  /**
   * The fewest servers.
   *
   * @default 2
   */
  readonly minCapacity?: number;
  /**
   * The most servers.
   *
   * @default 10
   */
  readonly maxCapacity?: number;
  /**
   * How long a leaving server keeps its open connections (`ServiceTier.deregistrationDelay`).
   *
   * @default Duration.minutes(5)
   */
  readonly deregistrationDelay?: Duration;
}

/**
 * Each service on its own servers, routed by its path at the fleet's load balancer (listener rules 10,
 * 20, ... in the order given: add new services at the end, so that the rules of earlier ones keep their
 * priorities).
 */
export function servicesLayer(
  scope: Construct,
  web: LoadBalancedTier,
  sizing: NonNullable<StageSizing['web']>,
  services: readonly StageService[],
): ServiceTier[] {
  const names = services.map((s) => s.name);
  const repeated = names.find((name, i) => names.indexOf(name) !== i);
  if (repeated !== undefined) {
    throw new ScaleStagesError(`services must have different names; '${repeated}' is given twice.`);
  }
  const parent = new Construct(scope, 'Services');
  return services.map((service, i) => {
    if (!/^[a-z][a-z0-9-]{0,19}$/.test(service.name)) {
      throw new ScaleStagesError(
        `services name must be 1 to 20 lowercase letters, digits and hyphens, starting with a letter, such as 'realtime'; got '${service.name}'.`,
      );
    }
    return new ServiceTier(parent, service.name, {
      web,
      app: service.app,
      pathPatterns: [service.pathPattern],
      priority: 10 * (i + 1),
      instanceType: service.instanceType ?? new ec2.InstanceType(sizing.instanceType),
      minCapacity: service.minCapacity ?? 2,
      maxCapacity: service.maxCapacity ?? 10,
      deregistrationDelay: service.deregistrationDelay,
    });
  });
}

/**
 * Each service's path on the distribution, to the app's origin (the load balancer's VPC origin), as the
 * API is served: never cached, every method, the viewer's headers (a WebSocket upgrade's among them).
 * At stage 10m, `routing` (the regional routing function) picks the region, as it does for the API.
 */
export function serviceBehaviorsLayer(
  cdn: CdnStatic,
  appOrigin: cloudfront.IOrigin,
  services: readonly ServiceTier[],
  routing?: cloudfront.FunctionAssociation,
): void {
  for (const service of services) {
    service.pathPatterns.forEach((path) => cdn.addApiOrigin(appOrigin, path, routing && [routing]));
  }
}
