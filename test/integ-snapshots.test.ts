/**
 * The deploy tests' snapshots (test/integ/*.snapshot) match what the tests synthesize today, as
 * integ-runner checks them offline: a change to a stage's templates needs `npm run integ:update`, and
 * the change is what the next real run of the deploy tests (npm run integ:deploy) verifies.
 */
import * as path from 'path';
import { formatDifferences, fullDiff } from '@aws-cdk/cloudformation-diff';
import { UserStage } from '../lib';
import { BUILT_STAGES } from '../lib/stages/stage-table';
import { plan } from '../scripts/integ-deploy';
import { appOf, committedSnapshot, integFiles, snapshotOf } from './integ/snapshots';

/** What cdk diff would print between two template texts. */
function difference(before: string | undefined, after: string | undefined): string {
  const out: string[] = [];
  formatDifferences(
    { write: (chunk: string) => (out.push(chunk), true) } as unknown as NodeJS.WritableStream,
    fullDiff(before ? JSON.parse(before) : {}, after ? JSON.parse(after) : {}),
  );
  return out.join('');
}

test('every stage but the last has a deploy test that starts there and upgrades to the next', () => {
  const stages = integFiles().map((f) => /^integ\.stage-(\w+)\.ts$/.exec(path.basename(f))?.[1]);
  expect(stages.sort()).toEqual(BUILT_STAGES.filter((s) => s !== UserStage.USERS_10M).sort());
});

describe.each(integFiles().map((f) => [path.basename(f), f]))('%s', (_name, file) => {
  test('its snapshot is up to date (else: npm run integ:update)', () => {
    const current = snapshotOf(appOf(file));
    const committed = committedSnapshot(file);
    expect(Object.keys(committed).sort()).toEqual(Object.keys(current).sort());
    for (const name of Object.keys(current)) {
      if (committed[name] !== current[name]) {
        throw new Error(
          `${name} changed; run npm run integ:update and commit it:\n${
            name.endsWith('.template.json') ? difference(committed[name], current[name]) : current[name]
          }`,
        );
      }
    }
  }, 120_000);
});

describe('npm run integ:deploy runs each deploy test with the pinned CDK CLI', () => {
  test.each(integFiles().map((f) => [path.basename(f), f]))(
    '%s: deploys the stage with its assertions, then the next stage in place with its own, then destroys all',
    (name, file) => {
      const from = /^integ\.stage-(\w+)\.ts$/.exec(name)![1];
      const to = BUILT_STAGES[BUILT_STAGES.indexOf(from as UserStage) + 1];
      const manifest = JSON.parse(committedSnapshot(file)['integ.json']);
      const deploy = (...stacks: string[]) => ({
        region: 'us-east-1',
        args: ['deploy', '--app', 'cdk.out', '--require-approval', 'never', ...stacks],
      });
      const upgrade = `ScaleStagesInteg-${from}-Upgrade`;
      expect(plan(manifest.testCases, 'cdk.out')).toEqual([
        deploy(`ScaleStagesInteg-${from}-at-${from}`, `ScaleStagesInteg-${from}/DefaultTest/DeployAssert`),
        deploy(upgrade, `${upgrade}/${upgrade}TestCase/DeployAssert`),
        { region: 'us-east-1', args: ['destroy', '--app', 'cdk.out', '--all', '--force'] },
      ]);
      // The upgrade's case deploys the next stage's stacks first, under the same stack names.
      const assembly = appOf(file).synth();
      const next = assembly
        .getStackArtifact(upgrade)
        .dependencies.map((d) => d.id)
        .filter((id) => !id.endsWith('.assets'));
      expect(next).toEqual([`ScaleStagesInteg-${from}-at-${to}`]);
      expect(assembly.getStackArtifact(next[0]).stackName).toBe(
        assembly.getStackArtifact(`ScaleStagesInteg-${from}-at-${from}`).stackName,
      );
    },
  );
});
