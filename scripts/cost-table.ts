/**
 * Writes the cost column of the README's stage table from the library's own estimate
 * (`StageStacks.estimatedMonthlyCost`, one price table in lib/private/cost-model.ts), so the two
 * cannot disagree: `npm run cost-table`. test/cost.test.ts fails while the README is stale.
 */
import * as fs from 'fs';
import * as path from 'path';
import { App } from 'aws-cdk-lib/core';
import { StageStacks, TestedFeatureFlags, UserStage } from '../lib';
import { BUILT_STAGES } from '../lib/stages/stage-table';

export const README = path.join(__dirname, '..', 'README.md');

/** Each built stage's estimated monthly cost before traffic, in US dollars, as a user's app synthesizes it. */
export function stageCosts(): Map<UserStage, number> {
  return new Map(
    BUILT_STAGES.map((stage) => {
      // The validation report (the HTTP load balancer's warning) is the CLI's to print, not this script's.
      const app = new App({
        context: { ...TestedFeatureFlags.CONTEXT, '@aws-cdk/core:failSynthOnValidationErrors': false },
        // The bundled CloudFormation validator costs about a second per stage and changes no price.
        builtinCloudFormationValidation: false,
      });
      return [stage, new StageStacks(app, 'ScaleStages', { stage }).estimatedMonthlyCost()];
    }),
  );
}

/** `$1,624.59` */
export function dollars(amount: number): string {
  return `$${amount.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
}

/** The README with each built stage's row showing its cost in the stage table's cost column. */
export function withCosts(readme: string, costs: Map<UserStage, number>): string {
  const lines = readme.split('\n');
  const header = lines.find((line) => /^\| stage .*\| fixed monthly cost/.test(line));
  if (!header) throw new Error("README.md has no stage table with a 'fixed monthly cost' column");
  const column = header.split('|').findIndex((cell) => cell.trim().startsWith('fixed monthly cost'));
  return lines
    .map((line) => {
      const stage = /^\| `([^`]+)` /.exec(line)?.[1] as UserStage | undefined;
      const cost = stage && costs.get(stage);
      if (cost === undefined) return line;
      const cells = line.split('|');
      cells[column] = ` ${dollars(cost)} `.padEnd(cells[column].length);
      return cells.join('|');
    })
    .join('\n');
}

if (require.main === module) {
  const before = fs.readFileSync(README, 'utf8');
  const after = withCosts(before, stageCosts());
  fs.writeFileSync(README, after);
  console.log(
    after === before ? 'README.md: the cost table was up to date' : 'README.md: cost table written',
  );
}
