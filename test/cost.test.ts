import * as fs from 'fs';
import * as path from 'path';
import { UserStage } from '../lib';
import { BUILT_STAGES } from '../lib/stages/stage-table';
import { monthlyCost, PricedTemplate } from './cost-model';
import { synthStage } from './helpers';

const costs = new Map(
  BUILT_STAGES.map((stage) => {
    const { template, edge } = synthStage(stage);
    const templates = [template.toJSON(), ...(edge ? [edge.toJSON()] : [])] as PricedTemplate[];
    return [stage, monthlyCost(...templates)];
  }),
);

test('stage 1 costs at most $15 a month before traffic', () => {
  expect(costs.get(UserStage.USERS_1)).toBeLessThanOrEqual(15);
});

test.each(BUILT_STAGES)(
  "stage %s: the README's stage table is within $4 of the priced templates",
  (stage) => {
    const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
    const row = readme.split('\n').find((line) => line.startsWith(`| \`${stage}\` `))!;
    const stated = Number(/about \$([\d,]+)/.exec(row)![1].replace(/,/g, ''));
    // The README adds a few usage-priced items on top (backups, the retained stage-1 volume after
    // stage 1k, flow logs), so the stated cost may be a little higher than the fixed part.
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
