// The stage guard: a custom resource that every other resource of a StageStack depends on, so
// CloudFormation runs it before it changes anything else. It refuses an update that moves the stack
// down a stage or skips one, unless the deploy names that exact change (context key
// `allowStageChange=<from>-><to>`). A refusal fails the update at its first step, and CloudFormation
// rolls back: no other resource was touched, and deletions (of removed resources and of the old
// copies of replaced ones) happen only in the cleanup phase after every update succeeded
// (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-updating-stacks-monitor-stack.html).
//
// The deployed stage is the old `Stage` property on an update. On a create (the first deploy with a
// guard, over a stack from an older release) it is read from the stack's resources: each stage adds
// a marker resource whose logical id is stable since release 0.1.0.
//
// Runs on Node.js 24 with the runtime's own AWS SDK v3 (not bundled); `guard` takes its client as an
// argument so that tests can pass a fake.
'use strict';

exports.handler = async (event) => {
  const {
    CloudFormationClient,
    DescribeStacksCommand,
    ListStackResourcesCommand,
  } = require('@aws-sdk/client-cloudformation');
  const client = new CloudFormationClient({});
  return guard(event, {
    stackStatus: async (stackId) =>
      (await client.send(new DescribeStacksCommand({ StackName: stackId }))).Stacks[0].StackStatus,
    logicalIds: async (stackId) => {
      const ids = [];
      let NextToken;
      do {
        const page = await client.send(new ListStackResourcesCommand({ StackName: stackId, NextToken }));
        ids.push(...page.StackResourceSummaries.map((r) => r.LogicalResourceId));
        NextToken = page.NextToken;
      } while (NextToken);
      return ids;
    },
  });
};

const PHYSICAL_ID = 'stage-guard';

/**
 * Returns the custom resource's response, or throws a refusal whose message CloudFormation shows as
 * the status reason.
 *
 * @param event the CloudFormation request; ResourceProperties has `Stage`, `Stages` (every stage id
 *   in upgrade order), `Markers` (stage id -> marker logical id) and optional `AllowStageChange`
 * @param stack `stackStatus(stackId)` and `logicalIds(stackId)`, read from CloudFormation
 */
async function guard(event, stack) {
  const response = { PhysicalResourceId: event.PhysicalResourceId ?? PHYSICAL_ID };
  if (event.RequestType === 'Delete') return response;
  const {
    Stage: requested,
    Stages: stages,
    Markers: markers,
    AllowStageChange: allowed,
  } = event.ResourceProperties;
  // A rollback puts the stack back on the stage it ran: never refuse that. CloudFormation sends it as
  // another Update with the properties swapped ("If an Update fails, CloudFormation will trigger a
  // second Update during rollback", aws-cdk's docs/CLOUDFORMATION.md), so only the stack status tells.
  if (
    event.RequestType === 'Update' &&
    /ROLLBACK_IN_PROGRESS$/.test(await stack.stackStatus(event.StackId))
  ) {
    return response;
  }
  const deployed =
    event.RequestType === 'Update'
      ? event.OldResourceProperties.Stage
      : deployedStage(await stack.logicalIds(event.StackId), stages, markers);
  const refusal = refuse(deployed, requested, stages, allowed);
  if (refusal) {
    const error = new Error(refusal);
    // aws-cdk-lib's provider framework reports error.stack as the reason: keep it to the message.
    error.stack = refusal;
    throw error;
  }
  return response;
}

/** The highest stage whose marker resource the stack has; undefined for a stack with none (a new one). */
function deployedStage(logicalIds, stages, markers) {
  const present = new Set(logicalIds);
  return [...stages].reverse().find((stage) => markers[stage] && present.has(markers[stage]));
}

/** Why the change from `deployed` to `requested` is refused, or undefined when it may go ahead. */
function refuse(deployed, requested, stages, allowed) {
  if (deployed === undefined || deployed === requested) return undefined;
  const from = stages.indexOf(deployed);
  const to = stages.indexOf(requested);
  if (to === from + 1 || allowed === `${deployed}->${requested}`) return undefined;
  const pin = `To stay on stage ${deployed}, deploy with -c stage=${deployed} (or set "stage": "${deployed}" in cdk.json).`;
  const override = `-c allowStageChange=${deployed}->${requested}`;
  if (to < from) {
    return (
      `Stage guard: this stack runs stage ${deployed}, and this deploy asks for stage ${requested}, a downgrade. ` +
      `It would remove what ${named(stages.slice(to + 1, from + 1))} added, and nothing moves data back down. ` +
      `Nothing was changed: the update rolls back. ${pin} To go down on purpose, deploy again with ${override}.`
    );
  }
  return (
    `Stage guard: this stack runs stage ${deployed}, and this deploy asks for stage ${requested}, which skips ${named(stages.slice(from + 1, to))}. ` +
    `Upgrade one stage at a time: some steps move data (1 -> 10 moves the database into RDS), and each is tested from the stage before it. ` +
    `Nothing was changed: the update rolls back. Next: -c stage=${stages[from + 1]}. To skip on purpose, deploy again with ${override}.`
  );
}

/** "stage 10", or "stages 10, 100 and 1k". */
function named(list) {
  return list.length === 1 ? `stage ${list[0]}` : `stages ${list.slice(0, -1).join(', ')} and ${list.at(-1)}`;
}

exports.guard = guard;
