/**
 * The stage guard (issue 13, part 1): its handler refuses a downgrade or a skipped stage unless the
 * deploy names it, and every other resource depends on it, so CloudFormation runs it before it
 * changes anything.
 */
import * as path from 'path';
import { createRequire } from 'module';
import { fullDiff } from '@aws-cdk/cloudformation-diff';
import {
  CloudFormationClient,
  DescribeStacksCommand,
  ListStackResourcesCommand,
} from '@aws-sdk/client-cloudformation';
import { Template as AssertTemplate } from 'aws-cdk-lib/assertions';
import { StageStack, UserStage } from '../../lib';
import { STAGE_MARKERS } from '../../lib/stages/stage-guard';
import { BUILT_STAGES } from '../../lib/stages/stage-table';
import { newApp, releaseFixture, releaseStages } from '../helpers';
import { stageTemplates } from '../stage-templates';

interface GuardEvent {
  RequestType: 'Create' | 'Update' | 'Delete';
  StackId: string;
  PhysicalResourceId?: string;
  ResourceProperties: Record<string, unknown>;
  OldResourceProperties?: Record<string, unknown>;
}
interface StackReader {
  stackStatus(stackId: string): Promise<string>;
  logicalIds(stackId: string): Promise<string[]>;
}
interface GuardModule {
  handler(event: GuardEvent): Promise<{ PhysicalResourceId: string }>;
  guard(event: GuardEvent, stack: StackReader): Promise<{ PhysicalResourceId: string }>;
}

const load = createRequire(__filename);
const guardModule = load(
  path.join(__dirname, '..', '..', 'assets', 'stage-guard', 'index.js'),
) as GuardModule;

interface Template {
  readonly Resources: Record<
    string,
    { Type: string; Properties?: Record<string, unknown>; DependsOn?: string[] }
  >;
}
const templates = new Map(
  BUILT_STAGES.map((stage) => [stage, stageTemplates(stage).primary.template as unknown as Template]),
);
const STACK_ID = 'arn:aws:cloudformation:eu-west-1:111111111111:stack/ScaleStages/0f1e2d3c';

/** The guard's properties as a stage's template has them. */
function guardProperties(stage: UserStage, allowStageChange?: string): Record<string, unknown> {
  const [, guard] = Object.entries(templates.get(stage)!.Resources).find(
    ([, r]) => r.Type === 'Custom::StageGuard',
  )!;
  const properties: Record<string, unknown> = { ...guard.Properties!, AllowStageChange: allowStageChange };
  delete properties.ServiceToken;
  return properties;
}

/** A stack whose status and resources the fake CloudFormation reports. */
function stackReader(status = 'UPDATE_IN_PROGRESS', logicalIds: string[] = []): StackReader {
  return { stackStatus: async () => status, logicalIds: async () => logicalIds };
}

function update(from: UserStage, to: UserStage, allowStageChange?: string): GuardEvent {
  return {
    RequestType: 'Update',
    StackId: STACK_ID,
    PhysicalResourceId: 'stage-guard',
    ResourceProperties: guardProperties(to, allowStageChange),
    OldResourceProperties: guardProperties(from),
  };
}

describe('on an update, the guard', () => {
  test.each(BUILT_STAGES.slice(1).map((to, i) => [BUILT_STAGES[i], to]))(
    'lets %s -> %s go ahead',
    async (from, to) => {
      await expect(guardModule.guard(update(from, to), stackReader())).resolves.toEqual({
        PhysicalResourceId: 'stage-guard',
      });
    },
  );

  test('lets a deploy of the same stage go ahead, with other changes', async () => {
    await expect(
      guardModule.guard(update(UserStage.USERS_1K, UserStage.USERS_1K), stackReader()),
    ).resolves.toBeDefined();
  });

  test('refuses a downgrade, naming both stages, what goes, and the two ways on', async () => {
    const refusal = guardModule.guard(update(UserStage.USERS_1K, UserStage.USERS_1), stackReader());
    await expect(refusal).rejects.toThrow(
      'Stage guard: this stack runs stage 1k, and this deploy asks for stage 1, a downgrade. ' +
        'It would remove what stages 10, 100 and 1k added, and nothing moves data back down. ' +
        'Nothing was changed: the update rolls back. ' +
        'To stay on stage 1k, deploy with -c stage=1k (or set "stage": "1k" in cdk.json). ' +
        'To go down on purpose, deploy again with -c allowStageChange=1k->1.',
    );
  });

  test('refuses a one-stage downgrade too', async () => {
    await expect(
      guardModule.guard(update(UserStage.USERS_100K, UserStage.USERS_10K), stackReader()),
    ).rejects.toThrow(
      /runs stage 100k, .* asks for stage 10k, a downgrade\. It would remove what stage 100k added/,
    );
  });

  test('refuses a skipped stage, naming the stages skipped and the next one', async () => {
    await expect(
      guardModule.guard(update(UserStage.USERS_1, UserStage.USERS_1K), stackReader()),
    ).rejects.toThrow(
      'Stage guard: this stack runs stage 1, and this deploy asks for stage 1k, which skips stages 10 and 100. ' +
        'Upgrade one stage at a time: some steps move data (1 -> 10 moves the database into RDS), and each is tested from the stage before it. ' +
        'Nothing was changed: the update rolls back. Next: -c stage=10. ' +
        'To skip on purpose, deploy again with -c allowStageChange=1->1k.',
    );
  });

  test.each([
    ['a downgrade', UserStage.USERS_1K, UserStage.USERS_1, '1k->1'],
    ['a skip', UserStage.USERS_1, UserStage.USERS_1K, '1->1k'],
  ])('lets %s go ahead when allowStageChange names it', async (_what, from, to, allowed) => {
    await expect(guardModule.guard(update(from, to, allowed), stackReader())).resolves.toBeDefined();
  });

  test('refuses when allowStageChange names another deployed stage', async () => {
    // The user believed the stack ran 10k; it runs 1k.
    await expect(
      guardModule.guard(update(UserStage.USERS_1K, UserStage.USERS_1, '10k->1'), stackReader()),
    ).rejects.toThrow(/runs stage 1k, .*-c allowStageChange=1k->1\.$/);
  });

  test('never refuses a rollback, which puts the stack back on the stage it ran', async () => {
    // A 10 -> 100 upgrade that failed elsewhere rolls back 100 -> 10; a refused 1k -> 1 rolls back 1 -> 1k.
    for (const [from, to] of [
      [UserStage.USERS_100, UserStage.USERS_10],
      [UserStage.USERS_1, UserStage.USERS_1K],
    ]) {
      await expect(
        guardModule.guard(update(from, to), stackReader('UPDATE_ROLLBACK_IN_PROGRESS')),
      ).resolves.toBeDefined();
    }
  });

  test('gives CloudFormation the message alone as the reason, not a stack trace', async () => {
    // aws-cdk-lib's provider framework reports error.stack.
    const error = await guardModule
      .guard(update(UserStage.USERS_10, UserStage.USERS_1), stackReader())
      .catch((e: Error) => e);
    expect((error as Error).stack).toBe((error as Error).message);
  });

  test("keeps its longest refusal far below a custom resource response's 4096 bytes", async () => {
    // "The total size of the response body can't exceed 4096 bytes" (crpg-ref-responses.html).
    const error = await guardModule
      .guard(update(UserStage.USERS_100K, UserStage.USERS_1), stackReader())
      .catch((e: Error) => e);
    expect(Buffer.byteLength((error as Error).message)).toBeLessThan(1024);
  });

  test('lets the stack be deleted', async () => {
    const event: GuardEvent = { ...update(UserStage.USERS_1K, UserStage.USERS_1), RequestType: 'Delete' };
    await expect(guardModule.guard(event, stackReader('DELETE_IN_PROGRESS'))).resolves.toEqual({
      PhysicalResourceId: 'stage-guard',
    });
  });
});

describe('on its first deploy, over a stack from an earlier release, the guard', () => {
  const create = (to: UserStage): GuardEvent => ({
    RequestType: 'Create',
    StackId: STACK_ID,
    ResourceProperties: guardProperties(to),
  });
  const releases = ['0.1.0', '0.2.0', '0.3.0', '0.4.0'];
  const cases = releases.flatMap((release) =>
    releaseStages(release).map((stage) => [release, stage] as const),
  );

  test.each(cases)(
    'reads the stage of a release-%s stack at stage %s from its resources',
    async (release, stage) => {
      const ids = Object.keys(releaseFixture<Template>(release, stage).Resources);
      const downTo = stage === UserStage.USERS_1 ? undefined : UserStage.USERS_1;
      if (downTo) {
        await expect(
          guardModule.guard(create(downTo), stackReader('UPDATE_IN_PROGRESS', ids)),
        ).rejects.toThrow(`this stack runs stage ${stage}, and this deploy asks for stage 1, a downgrade`);
      }
      await expect(
        guardModule.guard(create(stage), stackReader('UPDATE_IN_PROGRESS', ids)),
      ).resolves.toBeDefined();
    },
  );

  test('lets a new stack start at any stage', async () => {
    for (const stage of BUILT_STAGES) {
      await expect(
        guardModule.guard(create(stage), stackReader('CREATE_IN_PROGRESS', [])),
      ).resolves.toBeDefined();
    }
  });

  test.each(BUILT_STAGES)(
    "finds stage %s's marker in this release's template, and not in the stage before",
    (stage) => {
      const marker = STAGE_MARKERS[stage];
      expect(Object.keys(templates.get(stage)!.Resources)).toContain(marker);
      const before = BUILT_STAGES[BUILT_STAGES.indexOf(stage) - 1];
      if (before) expect(Object.keys(templates.get(before)!.Resources)).not.toContain(marker);
    },
  );
});

describe("the guard's handler with the AWS SDK", () => {
  afterEach(() => jest.restoreAllMocks());

  test('reads the stack status and every page of its resources, by stack id', async () => {
    const calls: object[] = [];
    jest.spyOn(CloudFormationClient.prototype, 'send').mockImplementation(async (command: object) => {
      calls.push(command);
      if (command instanceof DescribeStacksCommand)
        return { Stacks: [{ StackStatus: 'UPDATE_IN_PROGRESS' }] };
      if (command instanceof ListStackResourcesCommand) {
        return command.input.NextToken
          ? { StackResourceSummaries: [{ LogicalResourceId: STAGE_MARKERS[UserStage.USERS_1K] }] }
          : { StackResourceSummaries: [{ LogicalResourceId: 'NetworkVpc7FB7348F' }], NextToken: 'page-2' };
      }
      throw new Error(`unexpected command ${command.constructor.name}`);
    });
    const create: GuardEvent = {
      RequestType: 'Create',
      StackId: STACK_ID,
      ResourceProperties: guardProperties(UserStage.USERS_1),
    };
    await expect(guardModule.handler(create)).rejects.toThrow(/runs stage 1k/);
    expect(calls.map((c) => [c.constructor.name, (c as ListStackResourcesCommand).input])).toEqual([
      ['ListStackResourcesCommand', { StackName: STACK_ID, NextToken: undefined }],
      ['ListStackResourcesCommand', { StackName: STACK_ID, NextToken: 'page-2' }],
    ]);

    calls.length = 0;
    await expect(guardModule.handler(update(UserStage.USERS_1K, UserStage.USERS_1))).rejects.toThrow(
      /a downgrade/,
    );
    expect(calls.map((c) => [c.constructor.name, (c as DescribeStacksCommand).input])).toEqual([
      ['DescribeStacksCommand', { StackName: STACK_ID }],
    ]);
  });
});

describe('in the template, the guard', () => {
  test.each(BUILT_STAGES)('at stage %s runs before every other resource changes', (stage) => {
    const resources = templates.get(stage)!.Resources;
    const [guardId, guard] = Object.entries(resources).find(([, r]) => r.Type === 'Custom::StageGuard')!;
    expect(guard.Properties!.Stage).toBe(stage);
    // What the guard needs: its provider's function and role, which depend on nothing else.
    const handlerId = (guard.Properties!.ServiceToken as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0];
    const roleId = (resources[handlerId].Properties!.Role as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0];
    expect(guard.DependsOn).toBeUndefined();
    expect(resources[handlerId].DependsOn).toEqual([roleId]);
    expect(resources[roleId].DependsOn).toBeUndefined();

    const afterGuard = (id: string) => (resources[id].DependsOn ?? []).includes(guardId);
    // A VPC origin comes after its load balancer, which comes after the guard; one of a secondary
    // region (stage 10m) reads its load balancer from that region's stack, and is new at 10m.
    const vpcOriginsAfterGuard = Object.values(resources)
      .filter((r) => r.Type === 'AWS::CloudFront::VpcOrigin')
      .map((r) => {
        const properties = JSON.stringify(r.Properties);
        const ref = properties.match(/"Ref":"(\w+)"/);
        return ref ? afterGuard(ref[1]) : properties.includes('"Fn::GetStackOutput"');
      });
    expect(vpcOriginsAfterGuard).not.toContain(false);
    const notAfterGuard = Object.entries(resources)
      .filter(
        ([id, r]) =>
          !afterGuard(id) && !['AWS::CDK::Metadata', 'AWS::CloudFront::VpcOrigin'].includes(r.Type),
      )
      .map(([id]) => id);
    expect(notAfterGuard.sort()).toEqual([guardId, handlerId, roleId].sort());
  });

  test('may read only its own stack', () => {
    const resources = templates.get(UserStage.USERS_1)!.Resources;
    const role = Object.values(resources).find(
      (r) => r.Type === 'AWS::IAM::Role' && JSON.stringify(r).includes('cloudformation:'),
    )!;
    expect(JSON.stringify(role.Properties!.Policies)).toBe(
      JSON.stringify([
        {
          PolicyName: 'Inline',
          PolicyDocument: {
            Version: '2012-10-17',
            Statement: [
              {
                Effect: 'Allow',
                Action: ['cloudformation:DescribeStacks', 'cloudformation:ListStackResources'],
                Resource: { Ref: 'AWS::StackId' },
              },
            ],
          },
        },
      ]),
    );
  });

  test.each(BUILT_STAGES.flatMap((from) => BUILT_STAGES.filter((to) => to !== from).map((to) => [from, to])))(
    'is updated, and so runs, on %s -> %s',
    (from, to) => {
      const updated: string[] = [];
      fullDiff(templates.get(from)!, templates.get(to)!).resources.forEachDifference((_id, change) => {
        if (change.resourceType === 'Custom::StageGuard')
          updated.push(...Object.keys(change.propertyUpdates));
      });
      expect(updated).toContain('Stage');
    },
  );
});

describe('allowStageChange', () => {
  const stageStack = (stage: UserStage, props: { allowStageChange?: string; context?: string } = {}) => {
    const app = newApp();
    if (props.context) app.node.setContext('allowStageChange', props.context);
    return new StageStack(app, 'ScaleStages', { stage, allowStageChange: props.allowStageChange });
  };

  test.each([
    [
      '1k->',
      /allowStageChange must be '<from>-><to>' with two different stages of 1, 10, 100, 1k, 10k, 100k, 1m, 10m, such as '1k->1'; got '1k->'\./,
    ],
    ['1k-1', /got '1k-1'/],
    ['2->1', /got '2->1'/],
    ['1->1', /two different stages.*got '1->1'/],
    ['1k->10->1', /got '1k->10->1'/],
    [
      '1k->10',
      /allowStageChange '1k->10' allows a change to stage 10, but this deploy is stage 1\. Give -c allowStageChange=<deployed stage>->1, or leave it out\./,
    ],
  ])("'%s' fails at synth", (value, message) => {
    expect(() => stageStack(UserStage.USERS_1, { allowStageChange: value })).toThrow(message);
    expect(() => stageStack(UserStage.USERS_1, { context: value })).toThrow(message);
  });

  test('reaches the guard from the context key, and the prop wins over it', () => {
    const guardOf = (stack: StageStack) =>
      Object.values((AssertTemplate.fromStack(stack).toJSON() as Template).Resources).find(
        (r) => r.Type === 'Custom::StageGuard',
      )!.Properties!.AllowStageChange;
    expect(guardOf(stageStack(UserStage.USERS_1, { context: '1k->1' }))).toBe('1k->1');
    expect(guardOf(stageStack(UserStage.USERS_1, { context: '1k->1', allowStageChange: '10k->1' }))).toBe(
      '10k->1',
    );
    expect(guardOf(stageStack(UserStage.USERS_1))).toBeUndefined();
  });
});
