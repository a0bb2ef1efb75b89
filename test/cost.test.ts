import * as fs from 'fs';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { CostEstimate, ScaleStagesError, StageStacks, UserStage } from '../lib';
import { BUILT_STAGES } from '../lib/stages/stage-table';
import { monthlyCost, PricedTemplate } from '../lib/private/cost-model';
import { dollars, README, stageCosts, withCosts } from '../scripts/cost-table';
import { newApp, synthStage } from './helpers';
import { stageTemplates } from './stage-templates';

const costs = new Map(
  BUILT_STAGES.map((stage) => {
    const { primary, edge, secondaries } = stageTemplates(stage);
    const templates = [primary, ...(edge ? [edge] : []), ...secondaries].map(
      (s) => s.template as unknown as PricedTemplate,
    );
    return [stage, monthlyCost(...templates)];
  }),
);

test('stage 1 costs at most $15 a month before traffic, as StageStack itself reports', () => {
  expect(costs.get(UserStage.USERS_1)).toBeLessThanOrEqual(15);
  expect(synthStage(UserStage.USERS_1).stack.estimatedMonthlyCost()).toBe(costs.get(UserStage.USERS_1));
});

test("the README's stage table shows the library's own estimate (npm run cost-table writes it)", () => {
  const readme = fs.readFileSync(README, 'utf8');
  const fromLibrary = stageCosts();
  // The same estimate as the tests' synthesis of each stage.
  expect([...fromLibrary.entries()]).toEqual([...costs.entries()]);
  expect(withCosts(readme, fromLibrary)).toBe(readme);
  for (const [stage, cost] of costs) {
    expect(readme).toMatch(new RegExp(`^\\| \`${stage}\` .*\\| ${dollars(cost).replace('$', '\\$')} `, 'm'));
  }
});

test.each(BUILT_STAGES)(
  "stage %s: the README's cost breakdown adds up to within $4 of the estimate",
  (stage) => {
    const readme = fs.readFileSync(README, 'utf8');
    const section = readme.slice(readme.indexOf(`### Stage ${stage}:`));
    const breakdown = section.slice(
      section.indexOf('Cost:'),
      section.indexOf('\n\n', section.indexOf('Cost:')),
    );
    const totals = [...breakdown.matchAll(/about\s+\$([\d,]+)/g)];
    const stated = Number(totals[totals.length - 1][1].replace(/,/g, '')); // the last is the total
    // The breakdown adds a few usage-priced items (backups, the retained stage-1 volume after
    // stage 1k, flow logs), so the stated total may be a little higher than the fixed part.
    expect(stated - costs.get(stage)!).toBeGreaterThanOrEqual(-1);
    expect(stated - costs.get(stage)!).toBeLessThanOrEqual(4);
  },
);

test('an unpriced resource type fails the model instead of counting as free', () => {
  expect(() => monthlyCost({ Resources: { Q: { Type: 'AWS::Kinesis::Stream' } } })).toThrow(
    /Q: no price for AWS::Kinesis::Stream/,
  );
  expect(monthlyCost({ Resources: { N: { Type: 'AWS::EC2::NatGateway' } } })).toBe(32.85);
});

describe('instance types of any size', () => {
  const server = (type: string) =>
    monthlyCost({ Resources: { S: { Type: 'AWS::EC2::Instance', Properties: { InstanceType: type } } } });
  const database = (type: string) =>
    monthlyCost({
      Resources: {
        D: { Type: 'AWS::RDS::DBInstance', Properties: { DBInstanceClass: type, AllocatedStorage: '20' } },
      },
    });

  test('a size the table does not list is priced from a listed size of its family (EC2 normalization factors)', () => {
    // m7g.large lists $0.0816 an hour: m7g.xlarge is twice that, m7g.4xlarge eight times.
    expect(server('m7g.xlarge') - server('m7g.large')).toBeCloseTo(0.0816 * 730, 1);
    expect(server('m7g.4xlarge') - server('m7g.large')).toBeCloseTo(7 * 0.0816 * 730, 1);
    expect(server('t4g.large') - server('t4g.small')).toBeCloseTo(3 * 0.0168 * 730, 1);
    expect(database('db.m7g.2xlarge') - database('db.m7g.large')).toBeCloseTo(3 * 0.168 * 730, 1);
  });

  test.each([
    [
      'x2iedn.xlarge',
      /no list price for instance type 'x2iedn\.xlarge': it prices the families t4g, m7g in sizes nano, /,
    ],
    ['m7g.metal', /no list price for instance type 'm7g\.metal'/],
  ])('%s fails with a ScaleStagesError naming the type and the families it prices', (type, message) => {
    expect(() => server(type)).toThrow(message);
    expect(() => server(type)).toThrow(ScaleStagesError);
  });

  test('a stage sized up past the table is estimated, not refused', () => {
    const big = new StageStacks(newApp(), 'Big', {
      stage: UserStage.USERS_1K,
      serverInstanceType: new ec2.InstanceType('m7g.xlarge'),
    });
    expect(big.estimatedMonthlyCost()).toBeGreaterThan(costs.get(UserStage.USERS_1K)!);
  });
});

test("each construct reports its own baseline, and a stage's constructs add up to its stack", () => {
  const { stack } = synthStage(UserStage.USERS_100K);
  const parts = [
    stack.network,
    stack.web!,
    stack.database!,
    stack.readReplicas!,
    stack.cache!,
    stack.cdn,
    stack.operations,
  ];
  const byPart = parts.map((part) => CostEstimate.monthlyBaseline(part));
  // The fleet: an internal load balancer ($16.425) and two m7g.large servers with 8 GiB roots ($120.416).
  expect(CostEstimate.monthlyBaseline(stack.web!)).toBe(136.84);
  // The cache: two cache.t4g.medium Valkey nodes ($75.92) and the AUTH token's secret ($0.40).
  expect(CostEstimate.monthlyBaseline(stack.cache!)).toBe(76.32);
  const total = byPart.reduce((sum, cost) => sum + cost, 0);
  expect(Math.round(total * 100) / 100).toBe(CostEstimate.monthlyBaseline(stack));
  expect(CostEstimate.monthlyBaseline(stack)).toBe(stack.estimatedMonthlyCost());
});
