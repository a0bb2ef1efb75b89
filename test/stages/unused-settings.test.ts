/**
 * One rule for every stage-specific setting (STAGE_SPECIFIC_SETTINGS): given to a stage that does not
 * use it, a prop or a context key does nothing there and gets one warning that names it, the stage and
 * the stages that use it; at a stage that uses it, no warning.
 */
import * as path from 'path';
import { Duration, Size } from 'aws-cdk-lib';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { AppSource, StageStack, StageStacks, StageStacksProps, UserStage } from '../../lib';
import { BUILT_STAGES, STAGE_SPECIFIC_SETTINGS } from '../../lib/stages/stage-table';
import { IConstruct } from 'constructs';
import { newApp } from '../helpers';

/** A valid value of each stage-specific prop. */
const VALUES: Record<string, unknown> = {
  dataVolumeSize: Size.gibibytes(30),
  databaseInstanceType: new ec2.InstanceType('t4g.small'),
  databaseAllocatedStorage: Size.gibibytes(30),
  webClientPath: path.join(__dirname, '..', '..', 'assets', 'web-client'),
  webMinCapacity: 3,
  webMaxCapacity: 8,
  natInstanceType: new ec2.InstanceType('t4g.nano'),
  databaseReadReplicas: 2,
  databaseReplicaInstanceType: new ec2.InstanceType('m7g.large'),
  cacheNodeType: new ec2.InstanceType('m7g.large'),
  cacheReplicas: 1,
  worker: AppSource.demoWorker(),
  workerInstanceType: new ec2.InstanceType('m7g.medium'),
  workerMaxCapacity: 5,
  prerenderRate: Duration.minutes(10),
  databaseShards: 2,
  services: [{ name: 'realtime', app: AppSource.demoRealtime(), pathPattern: '/ws/*' }],
  regions: ['us-east-1', 'eu-west-1'],
  writerRegion: 'us-east-1',
};

/** The warnings a stage's primary stack carries, built with `props` (construct metadata: no synth). */
function warnings(
  stage: UserStage,
  props: Partial<StageStacksProps>,
  context: Record<string, string> = {},
): string[] {
  const app = newApp();
  for (const [key, value] of Object.entries(context)) app.node.setContext(key, value);
  const certificate = acm.Certificate.fromCertificateArn(
    app,
    'C',
    'arn:aws:acm:us-east-1:123456789012:certificate/x',
  );
  const https = 'loadBalancerCertificate' in props ? { loadBalancerDomainName: 'api.example.com' } : {};
  const stacks = new StageStacks(app, 'Shop', {
    stage,
    ...props,
    ...https,
    ...('loadBalancerCertificate' in props ? { loadBalancerCertificate: certificate } : {}),
  });
  return warningsOf(stacks.primary);
}

/** A construct's warnings, without the acknowledgement id the CDK appends. */
function warningsOf(scope: IConstruct): string[] {
  return scope.node.metadata
    .filter((m) => m.type === 'aws:cdk:warning')
    .map((m) => String(m.data).replace(/ \[ack: [^\]]+\]$/, ''));
}

/** The stage just before `from`, or undefined for stage 1. */
const before = (stage: UserStage) => BUILT_STAGES[BUILT_STAGES.indexOf(stage) - 1];

test('every stage-specific setting has a value to test with', () => {
  expect(Object.keys(VALUES).sort()).toEqual(
    Object.keys(STAGE_SPECIFIC_SETTINGS)
      .filter((s) => s !== 'loadBalancerCertificate' && s !== 'loadBalancerDomainName')
      .sort(),
  );
});

describe.each(Object.keys(VALUES).filter((s) => before(STAGE_SPECIFIC_SETTINGS[s].from)))('%s', (setting) => {
  const { from } = STAGE_SPECIFIC_SETTINGS[setting];
  const early = before(from);
  const props = { [setting]: VALUES[setting] };

  test(`a stage before '${from}' warns, naming the setting, the stage and where it applies`, () => {
    expect(warnings(early, props)).toContainEqual(
      expect.stringContaining(
        `${setting} is set, but stage '${early}' does not use it: it applies from stage '${from}'.`,
      ),
    );
  });

  test(`stage '${from}' uses it: no warning`, () => {
    expect(warnings(from, props).filter((w) => w.includes(`${setting} is set`))).toEqual([]);
  });
});

test("dataVolumeSize applies to stages '1' to '100': from 1k, where the server goes, it warns", () => {
  expect(warnings(UserStage.USERS_1K, { dataVolumeSize: Size.gibibytes(30) })).toContainEqual(
    "dataVolumeSize is set, but stage '1k' does not use it: it applies to stages '1' to '100'.",
  );
  expect(warnings(UserStage.USERS_100, { dataVolumeSize: Size.gibibytes(30) })).toEqual([]);
});

test('the load balancer certificate and its name below 1k: one warning each', () => {
  const found = warnings(UserStage.USERS_100, { loadBalancerCertificate: {} as acm.ICertificate });
  expect(found).toEqual(
    expect.arrayContaining([
      "loadBalancerCertificate is set, but stage '100' does not use it: it applies from stage '1k'.",
      "loadBalancerDomainName is set, but stage '100' does not use it: it applies from stage '1k'.",
    ]),
  );
});

test.each([
  ['writerRegion', 'us-west-2'],
  ['regions', 'us-east-1,eu-west-1'],
])('the context key %s below 10m warns the same way (cdk.json may keep it for stage 10m)', (key, value) => {
  expect(warnings(UserStage.USERS_1K, {}, { [key]: value })).toContainEqual(
    `${key} is set, but stage '1k' does not use it: it applies from stage '10m'.`,
  );
});

test('a stage given only what it uses has no such warning', () => {
  for (const stage of BUILT_STAGES.filter((s) => s !== UserStage.USERS_10M)) {
    expect(warnings(stage, {}).filter((w) => w.includes(' is set, but stage '))).toEqual([]);
  }
});

test('StageStack alone warns as StageStacks does', () => {
  const stack = new StageStack(newApp(), 'Shop', {
    stage: UserStage.USERS_1,
    cacheNodeType: new ec2.InstanceType('m7g.large'),
  });
  expect(warningsOf(stack)).toContainEqual(
    "cacheNodeType is set, but stage '1' does not use it: it applies from stage '100k'.",
  );
});
