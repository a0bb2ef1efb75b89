/**
 * The deploy test of one stage, in the aws-cdk convention (`@aws-cdk/integ-tests-alpha`): deploy the
 * stage, call the app through CloudFront and assert that it reports its database (and cache and queue)
 * healthy, then upgrade the same stacks in place to the next stage and assert again, then destroy.
 *
 * One app holds two test cases, run in order: the stage (kept after its assertions) and the next stage
 * under the same stack names (so its deploy is an in-place update of the same CloudFormation stacks),
 * destroyed after its assertions. The assertions read the stacks' outputs with `Fn::GetStackOutput`,
 * not cross-stack references, which would pin the stacks under test with exports.
 */
import { App, Aspects, CfnWaitConditionHandle, Duration, Fn, IAspect, RemovalPolicy } from 'aws-cdk-lib';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as rds from 'aws-cdk-lib/aws-rds';
import { ExpectedResult, IDeployAssert, IntegTest, IntegTestCaseStack } from '@aws-cdk/integ-tests-alpha';
import { IConstruct } from 'constructs';
import { StageStacks, TestedFeatureFlags, UserStage } from '../../lib';
import { atLeast, BUILT_STAGES } from '../../lib/stages/stage-table';

/** The region the deploy tests run in (the edge stack is in us-east-1 anyway). */
export const INTEG_REGION = 'us-east-1';

/** The stack name of the deploy test that starts at `stage`. */
export function integStackName(stage: UserStage): string {
  return `ScaleStagesInteg-${stage}`;
}

/**
 * Lets `cdk destroy` remove what a test deployed, which a user's stack keeps on purpose: the load
 * balancer's and the databases' deletion protection is off and the databases go with the stack.
 * Volumes, buckets, keys, secrets and log groups stay retained (the README says how to remove them).
 */
class Disposable implements IAspect {
  public visit(node: IConstruct): void {
    if (node instanceof elbv2.ApplicationLoadBalancer) {
      node.setAttribute('deletion_protection.enabled', 'false');
    }
    if (node instanceof rds.CfnDBInstance) {
      node.deletionProtection = false;
      node.deleteAutomatedBackups = true;
      node.applyRemovalPolicy(RemovalPolicy.DESTROY);
    }
  }
}

/** Asserts through CloudFront that the app of `stage` answers and reports its tiers healthy. */
function assertHealthy(assertions: IDeployAssert, stackName: string, stage: UserStage): void {
  const appUrl = Fn.getStackOutput(stackName, 'AppUrl', INTEG_REGION);
  const retry = { totalTimeout: Duration.minutes(15), interval: Duration.seconds(30) };
  // Stages 1 and 10 serve the app at the root; from 100 the web client is there and the API at /api/*.
  const statusPath = atLeast(stage, UserStage.USERS_100) ? '/api/status' : '/healthz';
  const database = { database: { configured: true, reachable: true, authenticated: true } };
  assertions
    .httpApiCall(Fn.join('', [appUrl, statusPath]))
    .expect(ExpectedResult.objectLike({ status: 200, body: database }))
    .waitForAssertions(retry);
  if (atLeast(stage, UserStage.USERS_100K)) {
    // Sessions live in the cache: 200 with a visit count only when the cache answers.
    assertions
      .httpApiCall(Fn.join('', [appUrl, '/api/session']))
      .expect(ExpectedResult.objectLike({ status: 200, body: { visits: 1 } }))
      .waitForAssertions(retry);
  }
  if (atLeast(stage, UserStage.USERS_1M)) {
    // The queue answers and no job has failed into the dead-letter queue.
    assertions
      .awsApiCall('SQS', 'getQueueAttributes', {
        QueueUrl: Fn.getStackOutput(stackName, 'DeadLetterQueueUrl', INTEG_REGION),
        AttributeNames: ['ApproximateNumberOfMessages'],
      })
      .expect(ExpectedResult.objectLike({ Attributes: { ApproximateNumberOfMessages: '0' } }));
  }
  if (stage === UserStage.USERS_10M) {
    // The second region answers from its cross-region replica.
    const replica = { database: { authenticated: true, role: 'replica (read-only)' } };
    assertions
      .httpApiCall(Fn.join('', [appUrl, '/_region/us-west-2/api/status']))
      .expect(ExpectedResult.objectLike({ status: 200, body: replica }))
      .waitForAssertions(retry);
  }
}

/**
 * The app of the deploy test that starts at `from` and upgrades in place to the next stage.
 */
export function stageUpgradeTest(from: UserStage): App {
  const to = BUILT_STAGES[BUILT_STAGES.indexOf(from) + 1];
  if (!to) throw new Error(`stage ${from} is the last; its deploy test starts at the stage before it`);
  const app = new App({
    // The compliance tests validate every stage's templates; here IntegTestCaseStack leaves an empty
    // assertion stack of its own (unused: its case's assertions go to the case's stack), which the
    // validator would refuse.
    builtinCloudFormationValidation: false,
    context: {
      ...TestedFeatureFlags.CONTEXT,
      // Snapshots hold no absolute paths, and no library versions.
      'aws:cdk:disable-stack-trace': true,
      'aws:cdk:version-reporting': false,
      // The CLI shows the warnings from the assembly; the snapshot test does not print them again.
      '@aws-cdk/core:failSynthOnValidationErrors': false,
    },
  });
  const stackName = integStackName(from);
  const [before, after] = [from, to].map(
    (stage) => new StageStacks(app, `${stackName}-at-${stage}`, { stage, stackName }).primary,
  );
  // integ-runner runs an app's test cases in order: the stage first (the default case, kept after its
  // assertions), then the upgrade, whose case is a stack of its own (IntegTestCaseStack) that
  // deploys the next stage's stacks before it, under the same names, and then destroys them all.
  const upgrade = new IntegTestCaseStack(app, `${stackName}-Upgrade`, {
    regions: [INTEG_REGION],
    stackUpdateWorkflow: false,
    diffAssets: false,
    cdkCommandOptions: { destroy: { args: { force: true } } },
  });
  new CfnWaitConditionHandle(upgrade, 'AfterTheUpgrade');
  upgrade.addStackDependency(after);
  const test = new IntegTest(app, stackName, {
    testCases: [before, upgrade],
    regions: [INTEG_REGION],
    stackUpdateWorkflow: false,
    diffAssets: false,
    cdkCommandOptions: { destroy: { enabled: false } },
  });
  assertHealthy(test.assertions, stackName, from);
  assertHealthy(upgrade._testCase.assertions, stackName, to);
  Aspects.of(app).add(new Disposable());
  return app;
}
