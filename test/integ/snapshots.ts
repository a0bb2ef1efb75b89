/**
 * The snapshots of the deploy tests, in integ-runner's layout (`<file>.snapshot/`, with `integ.json` and
 * a template per stack), checked offline as integ-runner checks them: the templates of every stack a
 * test case deploys (its stacks, the stacks they depend on, its assertion stack), asset hashes aside.
 *
 * integ-runner itself cannot read this library's output: the newest `@aws-cdk/integ-runner` on the npm
 * registry (2.197.10) reads cloud assembly schema 53, and aws-cdk-lib 2.276.0 writes 55 ("Cloud assembly
 * schema version mismatch"). A release that reads 55 can take these snapshots as they are.
 */
import * as fs from 'fs';
import * as path from 'path';
import { App } from 'aws-cdk-lib';
import * as cxapi from 'aws-cdk-lib/cx-api';

/** The deploy tests: `integ.*.ts` beside this file. */
export function integFiles(): string[] {
  return fs
    .readdirSync(__dirname)
    .filter((f) => /^integ\..+\.ts$/.test(f))
    .map((f) => path.join(__dirname, f))
    .sort();
}

/** One test case of integ.json: the stacks it deploys and its assertion stack. */
interface TestCase {
  readonly stacks: string[];
  readonly assertionStack?: string;
}

/** What a deploy test's snapshot holds: integ.json and the templates, by file name. */
export type Snapshot = Record<string, string>;

/**
 * Asset hashes change with every asset build, and each assertion carries a salt of the synth's time (so
 * that it runs again on every deploy); integ-runner compares templates without them.
 */
function withoutAssetHashesAndSalts(text: string): string {
  return text.replace(/[0-9a-f]{64}/g, '<asset hash>').replace(/"salt": "\d+"/g, '"salt": "<synth time>"');
}

/** The snapshot of a deploy test's app: synthesizes it and keeps what integ-runner keeps. */
export function snapshotOf(app: App): Snapshot {
  const assembly = app.synth();
  const manifest = JSON.parse(fs.readFileSync(path.join(assembly.directory, 'integ.json'), 'utf8')) as {
    testCases: Record<string, TestCase>;
  };
  const byPath = (id: string) =>
    assembly.stacks.find((s) => s.id === id || s.hierarchicalId === id || s.displayName === id);
  const kept = new Map<string, cxapi.CloudFormationStackArtifact>();
  const keep = (stack?: cxapi.CloudFormationStackArtifact) => {
    if (!stack || kept.has(stack.id)) return;
    kept.set(stack.id, stack);
    stack.dependencies
      .filter((d): d is cxapi.CloudFormationStackArtifact => d instanceof cxapi.CloudFormationStackArtifact)
      .forEach(keep);
  };
  for (const testCase of Object.values(manifest.testCases)) {
    testCase.stacks.forEach((id) => keep(byPath(id)));
    if (testCase.assertionStack) keep(byPath(testCase.assertionStack));
  }
  const snapshot: Snapshot = { 'integ.json': JSON.stringify(manifest, null, 1) + '\n' };
  for (const stack of kept.values()) {
    snapshot[`${stack.id}.template.json`] =
      withoutAssetHashesAndSalts(JSON.stringify(stack.template, null, 1)) + '\n';
  }
  return snapshot;
}

/** The snapshot directory of a deploy test file. */
export function snapshotDir(file: string): string {
  return `${file}.snapshot`;
}

/** The committed snapshot of a deploy test file (empty when there is none). */
export function committedSnapshot(file: string): Snapshot {
  const dir = snapshotDir(file);
  if (!fs.existsSync(dir)) return {};
  return Object.fromEntries(fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f), 'utf8')]));
}

/** Writes a snapshot over the committed one. */
export function writeSnapshot(file: string, snapshot: Snapshot): void {
  const dir = snapshotDir(file);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir);
  for (const [name, text] of Object.entries(snapshot)) fs.writeFileSync(path.join(dir, name), text);
}

/** The app a deploy test file builds (its default export). */
export function appOf(file: string): App {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require(file) as { default: App }).default;
}
