import { Validations } from 'aws-cdk-lib/core';
import { Construct } from 'constructs';
import { monthlyCost, templateOf } from '../private/cost-model';
import { ScaleStagesError } from '../private/errors';
import { checkRegion } from '../private/regions';
import { DEFAULT_REGIONS, readDatabaseShards, readString } from '../stages/context';
import { EdgeStack } from '../stages/edge-stack';
import { SecondaryRegionStack } from '../stages/secondary-region-stack';
import { StageStack } from '../stages/stage-stack';
import { edgeAndPrimary } from './edge-and-primary';
import { StageStacksProps } from './stage-stacks-props';
import { UserStage } from '../stages/user-stage';

/**
 * Stage 10m: the 1m blueprint in several regions behind one CloudFront distribution.
 *
 * - The primary region is the stage-1m stack, grown in place (the same `StageStack`, the same
 *   logical ids): it keeps the writable database, replicates its database secret and its media
 *   into every other region, and its distribution routes each viewer's reads to the nearest region
 *   (with the next nearest as failover) and the writes to the writer region.
 * - Each secondary region is a `SecondaryRegionStack`: a fleet, a cross-region read replica of the
 *   database (and of each shard, with `databaseShards`), a cache and workers of its own.
 *
 * Deploy order: the edge stack and the secondary regions first (they read the primary's outputs
 * from stage 1m), then the primary, which reads theirs; `npx cdk deploy --all` follows it. The
 * stacks stay environment-agnostic except for their regions, so synth needs no credentials.
 *
 * Not a construct of its own: its stacks sit at the app's top level (`cdk deploy <name>` finds
 * them, and the primary keeps the template and artifact name of earlier stages).
 */
export class MultiRegion {
  /** The primary region's stack: the stage-1m blueprint plus the routing and the replication. */
  public readonly primary: StageStack;
  /** The stack in us-east-1 with the edge firewall. */
  public readonly edge?: EdgeStack;
  /** One stack per secondary region, in the order of `regions`. */
  public readonly secondaries: SecondaryRegionStack[];
  /** The regions, the primary first. */
  public readonly regions: string[];

  /**
   * @param scope the app
   * @param name the primary stack's name; each secondary region's stack is `<name>-<region>`
   * @param props the stage (10m) and its settings; `regions` names the regions, the primary first,
   * each one where CloudFront VPC origins reach load balancers (default us-east-1, us-west-2)
   */
  constructor(scope: Construct, name: string, props: StageStacksProps) {
    if (props.stage !== UserStage.USERS_10M) {
      throw new ScaleStagesError(
        `MultiRegion builds stage '10m'; got stage '${props.stage}'. StageStacks builds stages 1 to 1m in one region.`,
      );
    }
    if (props.secondaryRegions !== undefined) {
      throw new ScaleStagesError(
        'MultiRegion builds the secondary regions from regions; leave secondaryRegions out (or compose StageStack and SecondaryRegionStack yourself).',
      );
    }
    this.regions = props.regions ?? DEFAULT_REGIONS;
    checkRegions(this.regions);
    const [primaryRegion, ...others] = this.regions;
    const databaseShards = readDatabaseShards(scope.node, props.databaseShards);
    this.secondaries = others.map(
      (region, i) =>
        new SecondaryRegionStack(scope, `${name}-${region}`, {
          // A primary given its own stackName names its regions after it, as it does by default.
          stackName: props.stackName && `${props.stackName}-${region}`,
          region,
          // No account: a stack with both fixed looks its availability zones up, which needs credentials.
          primaryStackName: props.stackName ?? name,
          primaryRegion,
          cidr: `10.${i + 1}.0.0/16`,
          app: props.app,
          worker: props.worker,
          databaseShards,
          services: props.services,
          writerRegion: props.writerRegion ?? readString(scope.node, 'writerRegion'),
          alarmEmail: props.alarmEmail,
          outgrowThresholds: props.outgrowThresholds,
        }),
    );
    const { edge, primary } = edgeAndPrimary(scope, name, { ...props, secondaryRegions: this.secondaries });
    this.edge = edge;
    this.primary = primary;
    for (const secondary of this.secondaries) {
      primary.addStackDependency(secondary);
      if (edge || props.webAclArn) {
        Validations.of(secondary.web.loadBalancer).acknowledge({
          id: 'NIST.800.53.R5-ALBWAFEnabled',
          reason:
            "The load balancer is internal and reached only through the primary's CloudFront distribution, whose edge web ACL inspects every request first.",
        });
      }
    }
  }

  /**
   * The stage's estimated monthly cost before traffic, in US dollars: every stack, at us-east-1
   * on-demand list prices (see `StageStack.estimatedMonthlyCost`).
   */
  public estimatedMonthlyCost(): number {
    return monthlyCost(
      templateOf(this.primary),
      ...(this.edge ? [templateOf(this.edge)] : []),
      ...this.secondaries.map(templateOf),
    );
  }
}

/** At least two regions, each once, each able to host a region of stage 10m. */
function checkRegions(regions: string[]): void {
  if (regions.length < 2) {
    throw new ScaleStagesError(
      `MultiRegion regions must name at least two regions, the primary first, such as us-east-1,eu-west-1; got '${regions.join(',')}'.`,
    );
  }
  regions.forEach((region) => checkRegion('MultiRegion regions', region));
  const repeated = regions.find((r, i) => regions.indexOf(r) !== i);
  if (repeated) {
    throw new ScaleStagesError(
      `MultiRegion regions must name each region once; got '${regions.join(',')}', which repeats '${repeated}'.`,
    );
  }
}
