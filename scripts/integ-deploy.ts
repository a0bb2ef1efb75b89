// Runs the deploy tests for real, in an AWS account: `npm run integ:deploy -- <stage>` (or `all`).
// For each test case of test/integ/integ.stage-<stage>.ts, in integ.json's order, it deploys the case's
// stacks and its assertion stack with the pinned CDK CLI (the assertions run as the assertion stack is
// created, and a failed one fails the deploy), keeps them when the case says so, and destroys every
// stack of the app after the last case or a failure. integ-runner would do the same but cannot read this
// library's cloud assembly yet (test/integ/snapshots.ts says why). `--dry-run` prints the commands.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

/** One test case of integ.json, as integ-tests-alpha writes it. */
export interface IntegTestCase {
  readonly stacks: string[];
  readonly regions?: string[];
  readonly assertionStack?: string;
  readonly cdkCommandOptions?: { readonly destroy?: { readonly enabled?: boolean } };
}

/** A command of the plan: the CDK CLI's arguments and the region it runs in. */
export interface Step {
  readonly args: string[];
  readonly region: string;
}

/**
 * The CDK CLI commands that run one deploy test from its synthesized cloud assembly `assembly`: a
 * deploy per test case (its stacks, the stacks they depend on, its assertions), then one destroy of
 * everything, unless every case keeps its stacks.
 */
export function plan(testCases: Record<string, IntegTestCase>, assembly: string): Step[] {
  const cases = Object.values(testCases);
  const region = (c: IntegTestCase) => c.regions?.[0] ?? 'us-east-1';
  const steps: Step[] = cases.map((c) => ({
    region: region(c),
    args: [
      'deploy',
      '--app',
      assembly,
      '--require-approval',
      'never',
      ...c.stacks,
      ...(c.assertionStack ? [c.assertionStack] : []),
    ],
  }));
  const last = cases[cases.length - 1];
  if (last && last.cdkCommandOptions?.destroy?.enabled !== false) {
    steps.push({ region: region(last), args: ['destroy', '--app', assembly, '--all', '--force'] });
  }
  return steps;
}

function cdk(step: Step, dryRun: boolean): boolean {
  const env = { ...process.env, AWS_REGION: step.region, AWS_DEFAULT_REGION: step.region };
  console.log(`$ AWS_REGION=${step.region} npx cdk ${step.args.join(' ')}`);
  if (dryRun) return true;
  return spawnSync('npx', ['cdk', ...step.args], { stdio: 'inherit', env }).status === 0;
}

function run(stage: string, dryRun: boolean): boolean {
  const file = path.join(__dirname, '..', 'test', 'integ', `integ.stage-${stage}.ts`);
  if (!fs.existsSync(file)) {
    console.error(`no deploy test starts at stage '${stage}' (test/integ/integ.stage-${stage}.ts)`);
    return false;
  }
  const assembly = fs.mkdtempSync(path.join(os.tmpdir(), `integ-${stage}-`));
  const synth = spawnSync(
    'npx',
    ['cdk', 'synth', '--quiet', '--app', `npx tsx ${file}`, '--output', assembly],
    {
      stdio: 'inherit',
    },
  );
  if (synth.status !== 0) return false;
  const manifest = JSON.parse(fs.readFileSync(path.join(assembly, 'integ.json'), 'utf8'));
  const steps = plan(manifest.testCases, assembly);
  const destroy = steps.find((s) => s.args[0] === 'destroy');
  for (const step of steps) {
    if (!cdk(step, dryRun)) {
      // A failed case leaves what it deployed: destroy it, then report the failure.
      if (destroy && step !== destroy) cdk(destroy, dryRun);
      return false;
    }
  }
  return true;
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const dryRun = args.includes('--dry-run');
  const [which] = args.filter((a) => a !== '--dry-run');
  // Every deploy test: test/integ/integ.stage-<stage>.ts.
  const tests = fs.readdirSync(path.join(__dirname, '..', 'test', 'integ'));
  const all = tests.map((f) => /^integ\.stage-(\w+)\.ts$/.exec(f)?.[1]).filter((s): s is string => !!s);
  const stages = which === 'all' ? all : [which];
  if (!which) {
    console.error(
      'usage: npm run integ:deploy -- <stage>|all [--dry-run]   (stages 1, 10, 100, 1k, 10k, 100k, 1m)',
    );
    process.exit(2);
  }
  const failed = stages.filter((stage) => !run(stage, dryRun));
  if (failed.length > 0) {
    console.error(`deploy tests failed: ${failed.join(', ')}`);
    process.exit(1);
  }
}
