import * as fs from 'fs';
import * as path from 'path';
import { Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { atLeast, BUILT_STAGES } from '../lib/stages/stage-table';
import { LoadBalancedTier, StageNetwork, StageStacks, UserStage } from '../lib';
import { acknowledgeNist80053R5, NIST_800_53_R5_ACKNOWLEDGEMENTS } from '../lib/private/nist-800-53-r5';
import { complianceReportOf, dataSafetyInfos } from './compliance-report';
import { newApp } from './helpers';

// Every built stage in one app, as `cdk synth -c stage=all` builds them: one synthesis, one
// validation pass, one cdk-nag pass.
const app = newApp({ validate: true });
for (const stage of BUILT_STAGES) new StageStacks(app, `ScaleStages-${stage}`, { stage });
const { findings, templates } = complianceReportOf(app);

/** A stage's stacks: the primary, and its edge stack and secondary regions (`ScaleStages-<id>-...`). */
const stacksOf = (stage: UserStage) =>
  Object.keys(templates).filter(
    (name) => name === `ScaleStages-${stage}` || name.startsWith(`ScaleStages-${stage}-`),
  );

describe.each(BUILT_STAGES)('stage %s compliance', (stage) => {
  const stackFindings = findings.filter((f) =>
    f.paths.some((p) => stacksOf(stage).some((name) => p.startsWith(`${name}/`))),
  );

  test('zero unacknowledged cdk-nag AwsSolutions findings', () => {
    expect(stackFindings.filter((f) => f.plugin === 'AwsSolutions')).toEqual([]);
  });

  test('zero unacknowledged cdk-nag NIST 800-53 rev 5 findings', () => {
    expect(stackFindings.filter((f) => f.plugin === 'NIST.800.53.R5')).toEqual([]);
  });

  test('zero findings of the bundled CloudFormation validator (errors and warnings)', () => {
    expect(stackFindings.filter((f) => f.plugin === 'CloudFormation Validate')).toEqual([]);
  });

  test('no construct warnings but the HTTP-only load balancers (from stage 1k, until a certificate is given)', () => {
    const warnings = stackFindings.filter((f) => f.plugin === 'Construct Annotations');
    const expected = atLeast(stage, UserStage.USERS_1K)
      ? [
          {
            rule: 'Annotation::cdk-scale-stages:httpOnlyLoadBalancer',
            paths: stacksOf(stage)
              .filter((name) => !name.endsWith('-Edge'))
              .map((name) => `${name}/Web`)
              .sort(),
          },
        ]
      : [];
    const ofStage = (path: string) => stacksOf(stage).some((name) => path.startsWith(`${name}/`));
    expect(warnings.map((f) => ({ rule: f.rule, paths: f.paths.filter(ofStage).sort() }))).toEqual(expected);
  });

  test('zero data-safety infos of the bundled validator (I3011, I3013)', () => {
    for (const name of stacksOf(stage)) expect([name, dataSafetyInfos(templates[name])]).toEqual([name, []]);
  });

  test.each(stacksOf(stage).filter((name) => !name.endsWith('-Edge')))(
    "%s: no security group admits the internet; CloudFront's prefix list is the only way in from outside",
    (name) => {
      type Rule = { CidrIp?: string; CidrIpv6?: string; SourcePrefixListId?: unknown };
      const resources = Object.values(
        (
          templates[name] as {
            Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
          }
        ).Resources,
      );
      const rules: Rule[] = [
        ...resources
          .filter((r) => r.Type === 'AWS::EC2::SecurityGroup')
          .flatMap((r) => (r.Properties.SecurityGroupIngress as Rule[] | undefined) ?? []),
        ...resources
          .filter((r) => r.Type === 'AWS::EC2::SecurityGroupIngress')
          .map((r) => r.Properties as Rule),
      ];
      expect(rules.filter((r) => r.CidrIp === '0.0.0.0/0' || r.CidrIpv6 === '::/0')).toEqual([]);
      const fromOutside = rules.filter((r) => r.SourcePrefixListId !== undefined);
      expect(fromOutside.map((r) => JSON.stringify(r.SourcePrefixListId))).toEqual([
        expect.stringMatching(/CloudFrontOriginFacingPrefixList.*PrefixLists\.0\.PrefixListId/),
      ]);
      const cidrs = rules.flatMap((r) => (r.CidrIp ? [r.CidrIp] : []));
      expect(cidrs.every((cidr) => cidr.startsWith('10.'))).toBe(true);
    },
  );

  test('an edge stack in us-east-1 from stage 1k, none before', () => {
    expect(Object.keys(templates).includes(`ScaleStages-${stage}-Edge`)).toBe(
      atLeast(stage, UserStage.USERS_1K),
    );
  });
});

test('every finding belongs to a stage stack, so none escapes the per-stage checks', () => {
  expect(
    findings.filter(
      (f) => !f.paths.some((p) => /^ScaleStages-[0-9a-z]+(-Edge|-[a-z]+-[a-z]+-\d)?\//.test(p)),
    ),
  ).toEqual([]);
  const edges = BUILT_STAGES.filter((stage) => atLeast(stage, UserStage.USERS_1K)).map(
    (s) => `ScaleStages-${s}-Edge`,
  );
  expect(Object.keys(templates).sort()).toEqual(
    [...BUILT_STAGES.map((stage) => `ScaleStages-${stage}`), ...edges, 'ScaleStages-10m-us-west-2'].sort(),
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

describe('the NIST 800-53 rev 5 acknowledgements (lib/private/nist-800-53-r5.ts)', () => {
  test('never cover what the library fixes: unrotated secrets, RDS log exports, load balancer deletion protection', () => {
    const rules = NIST_800_53_R5_ACKNOWLEDGEMENTS.map((a) => a.rule);
    for (const fixed of [
      'SecretsManagerRotationEnabled',
      'RDSLoggingEnabled',
      'ELBDeletionProtectionEnabled',
    ]) {
      expect(rules).not.toContain(fixed);
    }
    for (const a of NIST_800_53_R5_ACKNOWLEDGEMENTS) expect(a.reason.length).toBeGreaterThan(40);
  });

  test('leave an internet-facing, HTTP-only load balancer without a WAF flagged', () => {
    const app = newApp({ validate: true });
    const stack = new Stack(app, 'Public');
    const vpc = new StageNetwork(stack, 'Network', { natGateways: 1 }).vpc;
    new LoadBalancedTier(stack, 'Web', { vpc, internetFacing: true });
    acknowledgeNist80053R5(stack);
    const rules = complianceReportOf(app).findings.map((f) => f.rule);
    expect(rules).toEqual(
      expect.arrayContaining([
        'NIST.800.53.R5-ALBHttpToHttpsRedirection',
        'NIST.800.53.R5-ELBv2ACMCertificateRequired',
        'NIST.800.53.R5-ALBWAFEnabled',
      ]),
    );
  });

  test('leave the WAF finding of an internal load balancer when no edge web ACL guards the distribution', () => {
    const app = newApp({ validate: true });
    new StageStacks(app, 'NoEdge', { stage: UserStage.USERS_1K, edgeFirewall: false });
    const rules = complianceReportOf(app).findings.map((f) => f.rule);
    expect(rules).toContain('NIST.800.53.R5-ALBWAFEnabled');
    expect(rules).not.toContain('NIST.800.53.R5-ALBHttpToHttpsRedirection');
  });

  test('are each listed in the compliance notes (docs/compliance.md, linked from the README)', () => {
    const notes = fs.readFileSync(path.join(__dirname, '..', 'docs', 'compliance.md'), 'utf8');
    const section = notes.slice(notes.indexOf('## NIST 800-53 rev 5'), notes.indexOf('## AwsSolutions'));
    for (const { rule } of NIST_800_53_R5_ACKNOWLEDGEMENTS) expect(section).toContain(`\`${rule}\``);
  });
});
