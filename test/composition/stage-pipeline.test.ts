/**
 * StagePipeline: a CDK Pipelines pipeline that deploys a stage's stacks on every push, synthesized offline.
 * Its Deploy stage runs each stack's change set after the stacks it depends on (the edge stack, and at
 * stage 10m the secondary regions, before the primary), after a manual approval when asked, and keeps the
 * stack names the CLI gives them.
 */
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { StagePipeline, StagePipelineProps, UserStage } from '../../lib';
import { newApp } from '../helpers';

const ENV = { account: '111111111111', region: 'eu-west-1' };
const CONNECTION =
  'arn:aws:codeconnections:eu-west-1:111111111111:connection/abcd1234-ab12-cd34-ef56-abcdef123456';

interface Action {
  readonly Name: string;
  readonly RunOrder: number;
  readonly Region?: string;
  readonly ActionTypeId: { readonly Category: string };
  readonly Configuration?: { readonly StackName?: string; readonly ActionMode?: string };
}

/** Each stage of the synthesized pipeline, by name, with its actions. */
function pipelineOf(
  props: Partial<StagePipelineProps> & Pick<StagePipelineProps, 'deploy'>,
  app: App = newApp(),
) {
  const stack = new StagePipeline(app, 'ShopPipeline', {
    env: ENV,
    repository: 'example/shop',
    connectionArn: CONNECTION,
    ...props,
  });
  const [pipeline] = Object.values(Template.fromStack(stack).findResources('AWS::CodePipeline::Pipeline'));
  const stages = pipeline.Properties.Stages as { Name: string; Actions: Action[] }[];
  return { stack, stages: new Map(stages.map((s) => [s.Name, s.Actions])) };
}

/** The run order of each stack's change-set execution in the Deploy stage. */
function executeOrder(actions: Action[]): Record<string, number> {
  return Object.fromEntries(
    actions
      .filter((a) => a.Configuration?.ActionMode === 'CHANGE_SET_EXECUTE')
      .map((a) => [a.Configuration!.StackName!, a.RunOrder]),
  );
}

const stage1k = pipelineOf({ deploy: { stage: UserStage.USERS_1K }, manualApproval: true });
const stage10m = pipelineOf({ deploy: { stage: UserStage.USERS_10M } });

test('the pipeline gets each push from the repository, synthesizes the app, updates itself, then deploys', () => {
  expect([...stage1k.stages.keys()]).toEqual(['Source', 'Build', 'UpdatePipeline', 'Assets', 'ShopPipeline']);
  expect(stage1k.stages.get('Source')![0].ActionTypeId.Category).toBe('Source');
});

test("stage 1k: the approval first, then the edge stack, then the primary, in stacks of the pipeline's own", () => {
  const deploy = stage1k.stages.get('ShopPipeline')!;
  const approval = deploy.find((a) => a.ActionTypeId.Category === 'Approval')!;
  const order = executeOrder(deploy);
  expect(Object.keys(order).sort()).toEqual(['ShopPipeline-ScaleStages', 'ShopPipeline-ScaleStages-Edge']);
  expect(approval.RunOrder).toBeLessThan(Math.min(...Object.values(order)));
  expect(order['ShopPipeline-ScaleStages-Edge']).toBeLessThan(order['ShopPipeline-ScaleStages']);
  expect(deploy.find((a) => a.Configuration?.StackName === 'ShopPipeline-ScaleStages-Edge')!.Region).toBe(
    'us-east-1',
  );
});

test('stage 10m: the secondary region and the edge stack before the primary, each in its region', () => {
  const deploy = stage10m.stages.get('ShopPipeline')!;
  const order = executeOrder(deploy);
  expect(Object.keys(order).sort()).toEqual([
    'ShopPipeline-ScaleStages',
    'ShopPipeline-ScaleStages-Edge',
    'ShopPipeline-ScaleStages-us-west-2',
  ]);
  expect(order['ShopPipeline-ScaleStages-us-west-2']).toBeLessThan(order['ShopPipeline-ScaleStages']);
  expect(order['ShopPipeline-ScaleStages-Edge']).toBeLessThan(order['ShopPipeline-ScaleStages']);
  expect(
    deploy.find((a) => a.Configuration?.StackName === 'ShopPipeline-ScaleStages-us-west-2')!.Region,
  ).toBe('us-west-2');
  expect(deploy.some((a) => a.ActionTypeId.Category === 'Approval')).toBe(false);
});

test('the pipeline deploys environment-agnostic stacks, as the CLI does, with no lookups at synth', () => {
  expect(stage1k.stack.stacks.primary.region).toMatch(/^\$\{Token/);
  const app = stage1k.stack.node.root as App;
  expect(app.synth().nestedAssemblies.flatMap((n) => n.nestedAssembly.manifest.missing ?? [])).toEqual([]);
});

test("the pipeline's stacks are its own: none takes a name the CLI gives", () => {
  const names = [
    stage10m.stack.stacks.primary,
    stage10m.stack.stacks.edge!,
    ...stage10m.stack.stacks.secondaries,
  ].map((s) => s.stackName);
  expect(names.sort()).toEqual([
    'ShopPipeline-ScaleStages',
    'ShopPipeline-ScaleStages-Edge',
    'ShopPipeline-ScaleStages-us-west-2',
  ]);
});

test('the artifact bucket is versioned, encrypted, TLS only, with access logs, as the stages buckets are', () => {
  Template.fromStack(stage1k.stack).hasResourceProperties('AWS::S3::Bucket', {
    VersioningConfiguration: { Status: 'Enabled' },
    LoggingConfiguration: { LogFilePrefix: 'artifacts/', DestinationBucketName: Match.anyValue() },
    BucketEncryption: Match.anyValue(),
  });
});

test('the stage guard goes with the primary: the pipeline refuses what the CLI would refuse', () => {
  Template.fromStack(stage1k.stack.stacks.primary).resourceCountIs('Custom::StageGuard', 1);
});

test.each([undefined, { region: 'eu-west-1' }, { account: '111111111111' }])(
  'env %o fails with what it needs',
  (env) => {
    expect(
      () =>
        new StagePipeline(newApp(), 'ShopPipeline', {
          env,
          repository: 'example/shop',
          connectionArn: CONNECTION,
          deploy: { stage: UserStage.USERS_1 },
        }),
    ).toThrow(/StagePipeline env must name an account and a region/);
  },
);

test.each([
  [
    { repository: 'shop' },
    "StagePipeline repository must be 'owner/name', such as 'example/shop'; got 'shop'.",
  ],
  [
    { connectionArn: 'arn:aws:iam::111111111111:role/x' },
    "StagePipeline connectionArn must be the ARN of an AWS CodeConnections connection, such as 'arn:aws:codeconnections:eu-west-1:111111111111:connection/<id>'; got 'arn:aws:iam::111111111111:role/x'.",
  ],
  [
    { branch: 'my branch' },
    "StagePipeline branch must be a git branch name such as 'main'; got 'my branch'.",
  ],
])('%o fails with what it needs', (bad, message) => {
  expect(
    () =>
      new StagePipeline(newApp(), 'ShopPipeline', {
        env: ENV,
        repository: 'example/shop',
        connectionArn: CONNECTION,
        deploy: { stage: UserStage.USERS_1 },
        ...bad,
      }),
  ).toThrow(message);
});
