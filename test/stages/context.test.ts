import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App } from 'aws-cdk-lib';
import { UserStage } from '../../lib';
import { readDomainContext, readStageContext } from '../../lib/stages/context';

function read(context: Record<string, unknown>) {
  return readStageContext(new App({ context }).node);
}

describe('context keys', () => {
  test('defaults: stage 1, stack ScaleStages, regions us-east-1 and us-west-2', () => {
    expect(read({})).toEqual({
      appName: 'ScaleStages',
      regions: ['us-east-1', 'us-west-2'],
      stacks: [{ stage: UserStage.USERS_1, stackName: 'ScaleStages' }],
    });
  });

  test('one stage: the stack is named <appName> at every stage, so an upgrade updates it in place', () => {
    expect(read({ stage: '10', appName: 'Shop' }).stacks).toEqual([
      { stage: UserStage.USERS_10, stackName: 'Shop' },
    ]);
    expect(read({ stage: '1', appName: 'Shop' }).stacks[0].stackName).toBe('Shop');
  });

  test('a number in cdk.json is read as the stage id', () => {
    expect(read({ stage: 10 }).stacks[0].stage).toBe(UserStage.USERS_10);
  });

  test('stage=all: one <appName>-<id> stack per built stage', () => {
    expect(read({ stage: 'all' }).stacks).toEqual([
      { stage: UserStage.USERS_1, stackName: 'ScaleStages-1' },
      { stage: UserStage.USERS_10, stackName: 'ScaleStages-10' },
      { stage: UserStage.USERS_100, stackName: 'ScaleStages-100' },
      { stage: UserStage.USERS_1K, stackName: 'ScaleStages-1k' },
      { stage: UserStage.USERS_10K, stackName: 'ScaleStages-10k' },
      { stage: UserStage.USERS_100K, stackName: 'ScaleStages-100k' },
      { stage: UserStage.USERS_1M, stackName: 'ScaleStages-1m' },
      { stage: UserStage.USERS_10M, stackName: 'ScaleStages-10m' },
    ]);
  });

  test('regions: trimmed, first is primary', () => {
    expect(read({ regions: 'eu-west-1, eu-central-1' }).regions).toEqual(['eu-west-1', 'eu-central-1']);
  });

  test.each([
    [{ stage: '5' }, "context key 'stage' must be one of 1, 10, 100, 1k, 10k, 100k, 1m, 10m, all; got '5'."],
    [{ stage: '' }, "context key 'stage' must be one of 1, 10, 100, 1k, 10k, 100k, 1m, 10m, all; got ''."],
    [
      { stage: '1K' },
      "context key 'stage' must be one of 1, 10, 100, 1k, 10k, 100k, 1m, 10m, all; got '1K'.",
    ],
    [{ stage: ['1'] }, `context key 'stage' must be a string; got ["1"].`],
    [
      { appName: 'my app' },
      "context key 'appName' must start with a letter and hold only letters, digits and hyphens",
    ],
    [{ appName: '9lives' }, "got '9lives'"],
    [{ appName: 'A'.repeat(101) }, 'at most 100 characters'],
    [
      { regions: 'us-east-1,mars-north-1' },
      "context key 'regions' must be a comma-separated list of AWS regions such as us-east-1,us-west-2; got 'us-east-1,mars-north-1', and 'mars-north-1' is not a known region (known: af-south-1,",
    ],
    [{ regions: '' }, "and '' is not a known region"],
    [
      { regions: 'us-east-1,us-east-1' },
      "context key 'regions' must name each region once; got 'us-east-1,us-east-1', which repeats 'us-east-1'.",
    ],
    [
      { regions: 'us-east-1,eu-west-1,eu-west-1' },
      "context key 'regions' must name each region once; got 'us-east-1,eu-west-1,eu-west-1', which repeats 'eu-west-1'.",
    ],
    [
      { regions: 'us-east-1' },
      "context key 'regions' must name at least two regions, the primary first, such as us-east-1,eu-west-1 (stage 10m runs in several); got 'us-east-1'.",
    ],
    [
      { regions: 'us-east-1,us-gov-west-1' },
      "context key 'regions' must name regions where CloudFront VPC origins reach load balancers; got 'us-east-1,us-gov-west-1', and 'us-gov-west-1' is not one (choices: us-east-1, us-east-2,",
    ],
    [{ regions: 'us-east-1,' }, "and '' is not a known region"],
    [
      { regions: ['us-east-1', 'eu-west-1'] },
      `context key 'regions' must be a string; got ["us-east-1","eu-west-1"].`,
    ],
  ])('%o fails with a clear message', (context, message) => {
    expect(() => read(context)).toThrow(message);
  });
});

describe('unknown context keys', () => {
  test.each([
    ['stages', '1k', /context key 'stages' is not one this app reads; did you mean 'stage'\?/],
    ['appname', 'Shop', /context key 'appname' is not one this app reads; did you mean 'appName'\?/],
    ['region', 'eu-west-1', /context key 'region' is not one this app reads; did you mean 'regions'\?/],
    ['alarmEmails', 'a@b.c', /did you mean 'alarmEmail'\?/],
    [
      'serverInstanceType',
      't3.large',
      /context key 'serverInstanceType' is not one this app reads; props such as serverInstanceType are set in code/,
    ],
  ])('-c %s=%s fails with the closest key', (key, value, message) => {
    expect(() => read({ [key]: value })).toThrow(message);
    expect(() => read({ [key]: value })).toThrow(/\(context keys: stage, appName, regions, /);
  });

  test("the CDK's own keys and feature flags pass", () => {
    expect(() =>
      read({
        '@aws-cdk/core:newStyleStackSynthesis': true,
        'aws:cdk:enable-path-metadata': true,
        'availability-zones:account=1:region=x': [],
      }),
    ).not.toThrow();
  });
});

describe('own-domain context keys', () => {
  const readDomain = (context: Record<string, unknown>) => readDomainContext(new App({ context }).node);
  const arn = 'arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-4e5f';

  test('none: the *.cloudfront.net name', () => {
    expect(readDomain({})).toEqual({});
  });

  test('domain, certificate and hosted zone', () => {
    expect(
      readDomain({ domainName: 'www.example.com', certificateArn: arn, hostedZoneId: 'Z0123456789ABC' }),
    ).toEqual({
      domainName: 'www.example.com',
      certificateArn: arn,
      hostedZoneId: 'Z0123456789ABC',
    });
  });

  test.each([
    [{ domainName: 'www.example.com' }, "context keys 'domainName' and 'certificateArn' go together"],
    [{ certificateArn: arn }, 'got certificateArn without domainName'],
    [
      { domainName: 'localhost', certificateArn: arn },
      "context key 'domainName' must be a DNS name such as www.example.com; got 'localhost'.",
    ],
    [{ domainName: 'https://www.example.com', certificateArn: arn }, "got 'https://www.example.com'"],
    [
      { domainName: 'www.example.com', certificateArn: arn.replace('us-east-1', 'eu-west-1') },
      "context key 'certificateArn' must be the ARN of an ACM certificate in us-east-1 (CloudFront uses no other region)",
    ],
    [
      { domainName: 'www.example.com', certificateArn: arn, hostedZoneId: 'example.com' },
      "context key 'hostedZoneId' must be a Route 53 hosted zone id such as Z0123456789ABCDEFGHIJ; got 'example.com'.",
    ],
    [{ hostedZoneId: 'Z0123456789ABC' }, "context key 'hostedZoneId' needs 'domainName'"],
  ])('%o fails with a clear message', (context, message) => {
    expect(() => readDomain(context)).toThrow(message);
  });
});

describe('the CLI app', () => {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'scale-stages-cli-'));
  afterAll(() => fs.rmSync(outdir, { recursive: true, force: true }));

  function runApp(context: Record<string, string>) {
    return spawnSync(path.join(__dirname, '..', '..', 'node_modules', '.bin', 'tsx'), ['bin/app.ts'], {
      cwd: path.join(__dirname, '..', '..'),
      env: { ...process.env, CDK_CONTEXT_JSON: JSON.stringify(context), CDK_OUTDIR: outdir },
      encoding: 'utf8',
    });
  }

  test.each([
    [
      { stage: 'huge' },
      /^cdk-scale-stages: context key 'stage' must be one of 1, 10, 100, 1k, 10k, 100k, 1m, 10m, all; got 'huge'\. Example: npx cdk synth -c stage=10\n$/,
    ],
    [
      { stage: '10m', regions: 'us-east-1,mars-north-1' },
      /^cdk-scale-stages: context key 'regions' must be a comma-separated list of AWS regions such as us-east-1,us-west-2; got 'us-east-1,mars-north-1', and 'mars-north-1' is not a known region \(known: [^\n]*\)\.\n$/,
    ],
    [
      { stage: '10m', regions: 'eu-west-1' },
      /^cdk-scale-stages: context key 'regions' must name at least two regions, the primary first, such as us-east-1,eu-west-1 \(stage 10m runs in several\); got 'eu-west-1'\.\n$/,
    ],
  ])('a bad value %o fails with one line on stderr and no stack trace', (context, message) => {
    const result = runApp(context);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(message);
  });

  test('stage 1k writes the primary stack and the <appName>-Edge stack it depends on', () => {
    const result = runApp({ stage: '1k', appName: 'Shop' });
    expect(result.status).toBe(0);
    const manifest = JSON.parse(fs.readFileSync(path.join(outdir, 'manifest.json'), 'utf8'));
    const stacks = Object.entries(
      manifest.artifacts as Record<string, { type: string; environment: string; dependencies?: string[] }>,
    ).filter(([, a]) => a.type === 'aws:cloudformation:stack');
    expect(stacks.map(([id, a]) => [id, a.environment]).sort()).toEqual([
      ['Shop', 'aws://unknown-account/unknown-region'],
      ['Shop-Edge', 'aws://unknown-account/us-east-1'],
    ]);
    expect(stacks.find(([id]) => id === 'Shop')![1].dependencies).toContain('Shop-Edge');
  });

  test.each([
    ['us-east-1,eu-west-1', ['eu-west-1']],
    ['eu-west-1,us-east-1,ap-northeast-1', ['us-east-1', 'ap-northeast-1']],
  ])(
    'stage 10m with regions %s writes the primary, a <appName>-<region> stack per other region and the edge stack',
    (regions, secondaries) => {
      const result = runApp({ stage: '10m', appName: 'Shop', regions });
      expect(result.status).toBe(0);
      const manifest = JSON.parse(fs.readFileSync(path.join(outdir, 'manifest.json'), 'utf8'));
      const stacks = Object.entries(
        manifest.artifacts as Record<string, { type: string; environment: string; dependencies?: string[] }>,
      ).filter(([, a]) => a.type === 'aws:cloudformation:stack');
      expect(stacks.map(([id, a]) => [id, a.environment]).sort()).toEqual(
        [
          ['Shop', 'aws://unknown-account/unknown-region'],
          ['Shop-Edge', 'aws://unknown-account/us-east-1'],
          ...secondaries.map((r) => [`Shop-${r}`, `aws://unknown-account/${r}`]),
        ].sort(),
      );
      // The primary deploys last: it reads the other stacks' outputs.
      expect(stacks.find(([id]) => id === 'Shop')![1].dependencies).toEqual(
        expect.arrayContaining(['Shop-Edge', ...secondaries.map((r) => `Shop-${r}`)]),
      );
      for (const region of secondaries) {
        const template = fs.readFileSync(path.join(outdir, `Shop-${region}.template.json`), 'utf8');
        expect(template).toContain(`"SourceRegion": "${regions.split(',')[0]}"`);
      }
    },
  );
});
