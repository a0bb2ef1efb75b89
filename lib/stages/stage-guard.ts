import * as path from 'path';
import {
  Aspects,
  AspectPriority,
  Aws,
  CfnResource,
  CustomResource,
  CustomResourceProvider,
  CustomResourceProviderRuntime,
  Duration,
  IAspect,
  Stack,
} from 'aws-cdk-lib/core';
import { Construct, IConstruct } from 'constructs';
import { ScaleStagesError } from '../private/errors';
import { STAGES } from './stage-table';
import { UserStage } from './user-stage';

/**
 * The resource each stage adds first, by logical id: the stage-1 data volume, the RDS database, the
 * web bucket, the load balancer, the media bucket, the cache, the job queue, the regional routing's
 * key value store. These ids have not changed since the release that added their stage (a test reads
 * them in every release's templates), so the guard can tell which stage a stack from an older
 * release runs.
 */
export const STAGE_MARKERS: { readonly [stage: string]: string } = {
  [UserStage.USERS_1]: 'ServerDataVolume3EEC0930',
  [UserStage.USERS_10]: 'DatabaseInstanceAA8A5FDE',
  [UserStage.USERS_100]: 'CdnWebBucketFDD6AEBA',
  [UserStage.USERS_1K]: 'WebLoadBalancer8E8983B1',
  [UserStage.USERS_10K]: 'CdnMediaBucket427EBB89',
  [UserStage.USERS_100K]: 'CacheReplicationGroupBFE59FF3',
  [UserStage.USERS_1M]: 'WorkersQueueEADC6336',
  [UserStage.USERS_10M]: 'CdnRouting0F7FADBC',
};

const RESOURCE_TYPE = 'Custom::StageGuard';

/** Properties of a `StageGuard`. */
export interface StageGuardProps {
  /** The stage this deploy asks for. */
  readonly stage: UserStage;
  /** A change the user allows explicitly, as `<from>-><to>`, whose `<to>` is `stage`. */
  readonly allowStageChange?: string;
}

/**
 * Refuses, at deploy time, a deploy that moves the stack down a stage or skips one, unless
 * `allowStageChange` names that change. Every other resource of the stack depends on the guard, so
 * CloudFormation runs it first: a refusal fails the update before anything else changes, and the
 * stack rolls back (deletions only ever happen in the cleanup phase, after every update succeeded).
 */
export class StageGuard extends Construct {
  /** The guard's custom resource, which every other resource of the stack depends on. */
  public readonly resource: CfnResource;

  constructor(scope: Construct, id: string, props: StageGuardProps) {
    super(scope, id);
    checkAllowStageChange(props.stage, props.allowStageChange);
    const provider = CustomResourceProvider.getOrCreateProvider(this, `${RESOURCE_TYPE}Provider`, {
      codeDirectory: path.join(__dirname, '..', '..', 'assets', 'stage-guard'),
      runtime: CustomResourceProviderRuntime.NODEJS_24_X,
      timeout: Duration.minutes(1),
      description: 'cdk-scale-stages: refuses a stage downgrade or skip before the stack changes',
      policyStatements: [
        {
          Effect: 'Allow',
          Action: ['cloudformation:DescribeStacks', 'cloudformation:ListStackResources'],
          Resource: Aws.STACK_ID,
        },
      ],
    });
    const guard = new CustomResource(this, 'Resource', {
      resourceType: RESOURCE_TYPE,
      serviceToken: provider.serviceToken,
      properties: {
        Stage: props.stage,
        Stages: STAGES.map((s) => s.stage),
        Markers: STAGE_MARKERS,
        AllowStageChange: props.allowStageChange,
      },
    });
    this.resource = guard.node.defaultChild as CfnResource;
    Aspects.of(Stack.of(this)).add(new DependOnGuard(this.resource, provider.node.path), {
      priority: AspectPriority.MUTATING,
    });
  }
}

/**
 * CloudFront refuses to update a VPC origin while a distribution uses it, and a DependsOn change may
 * count as an update. A VPC origin refers to its load balancer, which depends on the guard, so it
 * comes after the guard all the same.
 */
const NO_NEW_DEPENDENCY = new Set(['AWS::CloudFront::VpcOrigin']);

/** Makes every resource but the guard and its provider depend on the guard. */
class DependOnGuard implements IAspect {
  constructor(
    private readonly guard: CfnResource,
    private readonly providerPath: string,
  ) {}

  public visit(node: IConstruct): void {
    if (!(node instanceof CfnResource) || node === this.guard) return;
    if (NO_NEW_DEPENDENCY.has(node.cfnResourceType)) return;
    if (node.node.path.startsWith(`${this.providerPath}/`)) return;
    node.addResourceDependency(this.guard);
  }
}

/** Checks the `<from>-><to>` form: two stage ids, different, and `<to>` the stage being deployed. */
function checkAllowStageChange(stage: UserStage, allowStageChange: string | undefined): void {
  if (allowStageChange === undefined) return;
  const stages = STAGES.map((s) => s.stage as string);
  const [from, to, ...rest] = allowStageChange.split('->').map((part) => part.trim());
  if (rest.length > 0 || !stages.includes(from) || to === undefined || !stages.includes(to) || from === to) {
    throw new ScaleStagesError(
      `allowStageChange must be '<from>-><to>' with two different stages of ${stages.join(', ')}, such as '1k->1'; got '${allowStageChange}'.`,
    );
  }
  if (to !== stage) {
    throw new ScaleStagesError(
      `allowStageChange '${allowStageChange}' allows a change to stage ${to}, but this deploy is stage ${stage}. Give -c allowStageChange=<deployed stage>->${stage}, or leave it out.`,
    );
  }
}
