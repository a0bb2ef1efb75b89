/**
 * AWS's CloudFormation linter, cfn-lint (maintained by the CloudFormation team), reads every stack of
 * every built stage, as a user's CI would: stages 1 to 1m with their edge stacks, stage 10m in its
 * default regions, stage 10m in three regions with an alarm address and an own domain, and stages 1
 * and 1m in a VPC of the app's own. Nothing
 * may remain but the known false positives below, each with its reason and source, and each still
 * seen (a stale entry fails too). scripts/test-prerequisites.sh brings cfn-lint 1.x before the tests.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { AppSource, StageStacks, UserStage } from '../lib';
import { BUILT_STAGES } from '../lib/stages/stage-table';
import { newApp } from './helpers';
import { stageTemplates } from './stage-templates';
import { Json, JsonObject } from './deploy-rules/template';

/** One finding of `cfn-lint --format json`. */
interface Finding {
  readonly Filename: string;
  readonly Level: string;
  readonly Message: string;
  readonly Rule: { readonly Id: string };
  readonly Location: { readonly Path: (string | number)[] };
}

/** A finding cfn-lint reports that is not a problem, with why and where that is written down. */
interface KnownFalsePositive {
  readonly rule: string;
  readonly reason: string;
  readonly source: string;
  /** Whether a finding of `rule` is this false positive, given the template it is in. */
  applies(finding: Finding, template: JsonObject): boolean;
}

/** The value a finding's path points at in its template. */
function at(template: Json, location: (string | number)[]): Json | undefined {
  let value: Json | undefined = template;
  for (const key of location) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string | number, Json>)[key];
  }
  return value;
}

const KNOWN_FALSE_POSITIVES: KnownFalsePositive[] = [
  {
    rule: 'W3005',
    reason:
      'A DependsOn beside a Ref or Fn::GetAtt to the same resource is redundant, not wrong: CloudFormation orders the ' +
      'two resources once either way. aws-cdk-lib adds these itself (a function on its role, a custom resource ' +
      "provider on its role, bucket notifications on their queue, request-count scaling on the load balancer's listener).",
    source: 'https://github.com/aws/aws-cdk/issues/24578',
    applies: () => true,
  },
  {
    rule: 'E1152',
    reason:
      'EC2 takes resolve:ssm:<public parameter> wherever it takes an image ID, RunInstances included, so an ' +
      "AWS::EC2::Instance may name the latest Amazon Linux through it; cfn-lint's ImageId format exempts launch " +
      'templates only (cfn-lint issue 3329).',
    source: 'https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/finding-an-ami-parameter-store.html',
    applies: (finding, template) => {
      const [section, id, , property] = finding.Location.Path;
      const value = at(template, finding.Location.Path);
      return (
        section === 'Resources' &&
        property === 'ImageId' &&
        at(template, ['Resources', id, 'Type']) === 'AWS::EC2::Instance' &&
        typeof value === 'string' &&
        value.startsWith('resolve:ssm:/aws/service/')
      );
    },
  },
  {
    rule: 'W3691',
    reason:
      "cfn-lint's list of deprecated RDS versions holds a major version as soon as any of its minor versions is " +
      'deprecated (its generator, scripts/update_schemas_from_aws_api.py, adds the major); a major-only ' +
      'EngineVersion makes RDS pick a current minor version of it ("If a major version is specified but a minor ' +
      'version is not, Amazon RDS defaults to a recent release of the major version you have specified").',
    source: 'https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/CHAP_PostgreSQL.html',
    applies: (finding, template) => {
      const [section, id] = finding.Location.Path;
      const properties = at(template, [section, id, 'Properties']) as JsonObject | undefined;
      return (
        properties?.Engine === 'postgres' &&
        typeof properties.EngineVersion === 'string' &&
        /^\d+$/.test(properties.EngineVersion)
      );
    },
  },
];

/** The regions an environment-agnostic stack is linted for: where users are likely to deploy it. */
const AGNOSTIC_REGIONS = ['us-east-1', 'us-west-1', 'ap-northeast-1', 'eu-west-1'];

interface LintedStack {
  readonly file: string;
  readonly template: JsonObject;
}

/** Writes a template, with the regions to lint it for (its own, else the agnostic ones), to `file`. */
function writeTemplate(file: string, template: JsonObject, region: string | undefined): LintedStack {
  const regions = region === undefined || region === 'unknown-region' ? AGNOSTIC_REGIONS : [region];
  const metadata = { ...(template.Metadata as JsonObject), 'cfn-lint': { config: { regions } } };
  fs.writeFileSync(file, JSON.stringify({ ...template, Metadata: metadata }));
  return { file, template };
}

/** Synthesizes an app and writes each stack's template to `dir`. */
function writeTemplates(app: App, dir: string, prefix: string): LintedStack[] {
  return app
    .synth()
    .stacks.map((stack) =>
      writeTemplate(
        path.join(dir, `${prefix}${stack.stackName}.template.json`),
        stack.template as JsonObject,
        stack.environment.region,
      ),
    );
}

/**
 * Every built stage at its defaults (the templates the snapshot, upgrade and deploy-rule tests read too),
 * each stack as `ScaleStages-<stage>`, `ScaleStages-<stage>-Edge` and `ScaleStages-<stage>-<region>`.
 */
function writeAllStages(dir: string): LintedStack[] {
  return BUILT_STAGES.flatMap((stage) => {
    const { primary, edge, secondaries } = stageTemplates(stage);
    const named = (suffix: string) => path.join(dir, `ScaleStages-${stage}${suffix}.template.json`);
    return [
      writeTemplate(named(''), primary.template as unknown as JsonObject, primary.region),
      ...(edge ? [writeTemplate(named('-Edge'), edge.template as unknown as JsonObject, edge.region)] : []),
      ...secondaries.map((s) =>
        writeTemplate(named(`-${s.region}`), s.template as unknown as JsonObject, s.region),
      ),
    ];
  });
}

/** Stage 10m in three regions, with an alarm address and an own domain (context keys). */
function decoratedTenMillion(): App {
  const app = newApp();
  app.node.setContext('alarmEmail', 'ops@example.com');
  app.node.setContext('domainName', 'shop.example.com');
  app.node.setContext('certificateArn', 'arn:aws:acm:us-east-1:123456789012:certificate/abcd-1234');
  app.node.setContext('hostedZoneId', 'Z0123456789ABCDEFGHIJ');
  new StageStacks(app, 'Shop', {
    stage: UserStage.USERS_10M,
    regions: ['us-east-1', 'us-west-1', 'ap-northeast-1'],
  });
  return app;
}

/** Stages 1 and 1m in a VPC of the app's own (the `vpc` prop), in one Platform stack. */
function inOwnVpc(): App {
  const app = newApp();
  const vpc = new ec2.Vpc(new Stack(app, 'Platform'), 'Vpc', { maxAzs: 2, natGateways: 1 });
  for (const stage of [UserStage.USERS_1, UserStage.USERS_1M])
    new StageStacks(app, `OwnVpc-${stage}`, { stage, vpc });
  return app;
}

/**
 * Stage 10m with the users' data over three database shards (`databaseShards`) and the demo's realtime
 * service (`services`): the primary has what stage 1m adds for them, and the secondary region a replica
 * of each shard and the service's servers of its own.
 */
function shardedTenMillion(): App {
  const app = newApp();
  new StageStacks(app, 'Sharded', {
    stage: UserStage.USERS_10M,
    databaseShards: 3,
    services: [{ name: 'realtime', app: AppSource.demoRealtime(), pathPattern: '/ws/*' }],
    regions: ['us-east-1', 'eu-west-1'],
  });
  return app;
}

/**
 * A template cfn-lint must fail: the secondary region of release 0.5.0, whose replica took its source
 * identifier apart with Fn::Split from a Fn::GetStackOutput.
 */
function splitOfStackOutput(dir: string, secondary: LintedStack): LintedStack {
  const template = structuredClone(secondary.template);
  const resources = template.Resources as Record<string, JsonObject>;
  const [id] = Object.entries(resources).find(([, r]) => r.Type === 'AWS::RDS::DBInstance')!;
  const output = {
    'Fn::GetStackOutput': { StackName: 'Shop', OutputName: 'DatabaseEndpoint', Region: 'us-east-1' },
  };
  (resources[id].Properties as JsonObject).SourceDBInstanceIdentifier = {
    'Fn::Select': [0, { 'Fn::Split': ['.', output] }],
  };
  const file = path.join(dir, 'broken-split-of-stack-output.template.json');
  fs.writeFileSync(file, JSON.stringify(template));
  return { file, template };
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfn-lint-'));
let stacks: LintedStack[] = [];
let broken: LintedStack;
let findings: Finding[] = [];

beforeAll(() => {
  stacks = [
    ...writeAllStages(dir),
    ...writeTemplates(decoratedTenMillion(), dir, 'decorated-'),
    ...writeTemplates(inOwnVpc(), dir, ''),
    ...writeTemplates(shardedTenMillion(), dir, ''),
  ];
  const secondary = stacks.find((s) => /ScaleStages-10m-us-west-2/.test(s.file))!;
  broken = splitOfStackOutput(dir, secondary);
  // One process for every template: cfn-lint's start-up costs about a second each.
  const run = spawnSync(
    'cfn-lint',
    ['--format', 'json', '--non-zero-exit-code', 'none', '--', ...[...stacks, broken].map((s) => s.file)],
    { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  );
  if (run.error || run.status !== 0) {
    throw new Error(`cfn-lint did not run (${run.error?.message ?? `exit ${run.status}`}): ${run.stderr}`);
  }
  findings = JSON.parse(run.stdout) as Finding[];
}, 300_000);

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** The findings of one template that no known false positive explains. */
function unexplained(stack: LintedStack): string[] {
  return findings
    .filter((f) => path.resolve(f.Filename) === stack.file)
    .filter((f) => !KNOWN_FALSE_POSITIVES.some((k) => k.rule === f.Rule.Id && k.applies(f, stack.template)))
    .map((f) => `${f.Rule.Id} ${f.Location.Path.join('/')}: ${f.Message}`);
}

test('lints every stack of every stage: primaries, edge stacks and secondary regions', () => {
  const names = stacks.map((s) => path.basename(s.file, '.template.json')).sort();
  expect(names).toEqual(
    expect.arrayContaining([
      'OwnVpc-1',
      'OwnVpc-1m',
      'ScaleStages-1',
      'ScaleStages-1k',
      'ScaleStages-1k-Edge',
      'ScaleStages-1m',
      'ScaleStages-1m-Edge',
      'ScaleStages-10m',
      'ScaleStages-10m-Edge',
      'ScaleStages-10m-us-west-2',
      'decorated-Shop',
      'decorated-Shop-Edge',
      'decorated-Shop-us-west-1',
      'decorated-Shop-ap-northeast-1',
    ]),
  );
  // A primary per stage, an edge stack per stage from 1k, 10m's secondary region, the four of the decorated
  // 10m, Platform with stage 1 and stage 1m (and its edge stack) in its VPC, and the sharded 10m with its
  // edge stack and its secondary region.
  const edges = BUILT_STAGES.length - BUILT_STAGES.indexOf(UserStage.USERS_1K);
  expect(stacks).toHaveLength(BUILT_STAGES.length + edges + 1 + 4 + 4 + 3);
});

test.each([
  'ScaleStages-1',
  'ScaleStages-10m-us-west-2',
  'decorated-Shop',
  'OwnVpc-1m',
  'Sharded',
  'Sharded-eu-west-1',
])('%s was linted (cfn-lint saw the file)', (name) => {
  const stack = stacks.find((s) => path.basename(s.file) === `${name}.template.json`)!;
  const linted = findings.some((f) => path.resolve(f.Filename) === stack.file);
  expect(linted).toBe(true); // each has at least its W3005 findings
});

describe('cfn-lint finds nothing but the known false positives', () => {
  test.each([
    ...BUILT_STAGES.map((s) => `ScaleStages-${s}`),
    'ScaleStages-10m-us-west-2',
    'ScaleStages-1k-Edge',
    'decorated-Shop',
    'decorated-Shop-Edge',
    'decorated-Shop-us-west-1',
    'decorated-Shop-ap-northeast-1',
    'Sharded',
    'Sharded-eu-west-1',
  ])('%s', (name) => {
    const stack = stacks.find((s) => path.basename(s.file) === `${name}.template.json`);
    expect(stack).toBeDefined();
    expect(unexplained(stack!)).toEqual([]);
  });

  test('every other stack too', () => {
    expect(stacks.flatMap(unexplained)).toEqual([]);
  });
});

test.each(KNOWN_FALSE_POSITIVES.map((k) => [k.rule, k] as const))(
  'the known false positive %s still occurs, with a reason and a source',
  (rule, known) => {
    expect(known.reason.length).toBeGreaterThan(40);
    expect(known.source).toMatch(/^https:\/\//);
    const seen = stacks.some((stack) =>
      findings.some(
        (f) =>
          path.resolve(f.Filename) === stack.file && f.Rule.Id === rule && known.applies(f, stack.template),
      ),
    );
    expect(seen).toBe(true);
  },
);

test("catches release 0.5.0's Fn::Split of a Fn::GetStackOutput in the secondary region", () => {
  expect(unexplained(broken)).toEqual(
    expect.arrayContaining([
      expect.stringMatching(
        /^E10\d\d Resources\/DatabaseReplicaInstance\w+\/Properties\/SourceDBInstanceIdentifier/,
      ),
    ]),
  );
});
