import { Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { atLeast, BUILT_STAGES } from '../lib/stages/stage-table';
import { StageStacks, UserStage } from '../lib';
import { complianceReportOf, dataSafetyInfos } from './compliance-report';
import { newApp } from './helpers';

// Every built stage in one app, as `cdk synth -c stage=all` builds them: one synthesis, one
// validation pass, one cdk-nag pass.
const app = newApp({ validate: true });
for (const stage of BUILT_STAGES) new StageStacks(app, `ScaleStages-${stage}`, { stage });
const { findings, templates } = complianceReportOf(app);

describe.each(BUILT_STAGES)('stage %s compliance', (stage) => {
  const stackFindings = findings.filter((f) =>
    f.paths.some((p) => p.startsWith(`ScaleStages-${stage}/`) || p.startsWith(`ScaleStages-${stage}-Edge/`)),
  );

  test('zero unacknowledged cdk-nag AwsSolutions findings', () => {
    expect(stackFindings.filter((f) => f.plugin === 'AwsSolutions')).toEqual([]);
  });

  test('zero findings of the bundled CloudFormation validator (errors and warnings)', () => {
    expect(stackFindings.filter((f) => f.plugin === 'CloudFormation Validate')).toEqual([]);
  });

  test('no construct warnings but the HTTP-only load balancer (from stage 1k, until a certificate is given)', () => {
    const warnings = stackFindings.filter((f) => f.plugin === 'Construct Annotations').map((f) => f.rule);
    const expected = atLeast(stage, UserStage.USERS_1K)
      ? ['Annotation::cdk-scale-stages:httpOnlyLoadBalancer']
      : [];
    expect(warnings).toEqual(expected);
  });

  test('zero data-safety infos of the bundled validator (I3011, I3013)', () => {
    expect(dataSafetyInfos(templates[`ScaleStages-${stage}`])).toEqual([]);
    const edge = templates[`ScaleStages-${stage}-Edge`];
    expect(edge === undefined ? [] : dataSafetyInfos(edge)).toEqual([]);
  });

  test('an edge stack in us-east-1 from stage 1k, none before', () => {
    expect(Object.keys(templates).includes(`ScaleStages-${stage}-Edge`)).toBe(
      atLeast(stage, UserStage.USERS_1K),
    );
  });
});

test('every finding belongs to a stage stack, so none escapes the per-stage checks', () => {
  expect(findings.filter((f) => !f.paths.some((p) => /^ScaleStages-[0-9a-z]+(-Edge)?\//.test(p)))).toEqual(
    [],
  );
  const edges = BUILT_STAGES.filter((stage) => atLeast(stage, UserStage.USERS_1K)).map(
    (s) => `ScaleStages-${s}-Edge`,
  );
  expect(Object.keys(templates).sort()).toEqual(
    [...BUILT_STAGES.map((stage) => `ScaleStages-${stage}`), ...edges].sort(),
  );
});

test('the compliance check reports findings of both plugins when there are some', () => {
  const app = newApp({ validate: true });
  const stack = new Stack(app, 'Bad');
  new ec2.CfnVolume(stack, 'Unencrypted', { availabilityZone: 'us-east-1a', size: 10 });
  const rules = complianceReportOf(app).findings.map((f) => `${f.plugin}:${f.rule}`);
  expect(rules).toEqual(
    expect.arrayContaining(['AwsSolutions:AwsSolutions-EC26', 'CloudFormation Validate:W3010']),
  );
});

test('the data-safety check reports I3011 and I3013 when there are some', () => {
  const infos = dataSafetyInfos({
    Resources: {
      Db: {
        Type: 'AWS::RDS::DBInstance',
        Properties: { DBInstanceClass: 'db.t4g.micro', Engine: 'postgres' },
      },
      Queue: { Type: 'AWS::SQS::Queue', Properties: {} },
    },
  });
  expect(infos).toEqual(
    expect.arrayContaining([
      expect.stringMatching(/^I3011 .*'DeletionPolicy' is a required property/),
      expect.stringMatching(/^I3013 .*'BackupRetentionPeriod' is a required property/),
      expect.stringMatching(/^I3013 .*'MessageRetentionPeriod' is a required property/),
    ]),
  );
});
