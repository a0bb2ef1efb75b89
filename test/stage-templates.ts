/**
 * The templates of each built stage at its defaults (what `synthStage(stage)` builds), synthesized once
 * for a whole test run and shared by the test files that only read them (the snapshots, the upgrade tests,
 * the deploy rules). Jest runs each file in a process of its own, so the copy is kept on disk: a folder of
 * the system's temporary directory named by a hash of everything synthesis reads (lib/, assets/, the
 * lockfile with the CDK's version, cdk.json, the test helpers), so that any change synthesizes again.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Token } from 'aws-cdk-lib';
import { UserStage } from '../lib';
import { synthStage } from './helpers';
import { CfnTemplate } from './deploy-rules/template';

/** One stack of a stage: its name, its region when fixed, its template. */
export interface StackTemplate {
  readonly stackName: string;
  readonly region?: string;
  readonly template: CfnTemplate;
}

/** A built stage's stacks. */
export interface StageTemplates {
  readonly primary: StackTemplate;
  /** The `<name>-Edge` stack, from stage 1k. */
  readonly edge?: StackTemplate;
  /** Stage 10m's secondary regions. */
  readonly secondaries: StackTemplate[];
}

const ROOT = path.join(__dirname, '..');
/** What synthesis reads, besides node_modules (which the lockfile pins). */
const INPUTS = [
  'lib',
  'assets',
  'package-lock.json',
  'cdk.json',
  'test/helpers.ts',
  'test/stage-templates.ts',
];

let cacheDir: string | undefined;

/** The folder of this source's templates: a hash of every input file's path and content. */
function templatesDir(): string {
  if (cacheDir) return cacheDir;
  const hash = crypto.createHash('sha256');
  const add = (file: string) => {
    const full = path.join(ROOT, file);
    if (fs.statSync(full).isDirectory()) {
      for (const entry of fs.readdirSync(full).sort()) add(path.join(file, entry));
    } else {
      hash.update(file).update('\0').update(fs.readFileSync(full)).update('\0');
    }
  };
  INPUTS.forEach(add);
  const parent = path.join(os.tmpdir(), 'cdk-scale-stages-templates');
  cacheDir = path.join(parent, hash.digest('hex').slice(0, 16));
  if (!fs.existsSync(cacheDir)) {
    // Templates of older sources are of no more use.
    fs.rmSync(parent, { recursive: true, force: true });
    fs.mkdirSync(cacheDir, { recursive: true });
  }
  return cacheDir;
}

/** Blocks this process for `ms` (the test files read templates synchronously, at load). */
function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Whether process `pid` is alive on this machine. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A stage's templates: read from this run's folder; else, when another test file's process is
 * synthesizing the stage (its lock file names it), what it writes there; else synthesized here and
 * written there for the others.
 */
export function stageTemplates(stage: UserStage): StageTemplates {
  const file = path.join(templatesDir(), `${stage}.json`);
  const lock = `${file}.lock`;
  const read = () => JSON.parse(fs.readFileSync(file, 'utf8')) as StageTemplates;
  for (const deadline = Date.now() + 180_000; Date.now() < deadline; sleep(100)) {
    if (fs.existsSync(file)) return read();
    try {
      fs.writeFileSync(lock, String(process.pid), { flag: 'wx' });
      break; // This process synthesizes the stage.
    } catch {
      // Another process holds the lock: wait for its file, unless it died.
      const holder = Number(fs.existsSync(lock) ? fs.readFileSync(lock, 'utf8') : NaN);
      if (Number.isInteger(holder) && holder > 0 && !alive(holder)) fs.rmSync(lock, { force: true });
    }
  }
  try {
    return write(stage, file);
  } finally {
    fs.rmSync(lock, { force: true });
  }
}

/** Synthesizes a stage and writes its templates to `file`. */
function write(stage: UserStage, file: string): StageTemplates {
  const { stack, template, edge, secondaries } = synthStage(stage);
  const templates: StageTemplates = {
    primary: {
      stackName: stack.stackName,
      region: Token.isUnresolved(stack.region) ? undefined : stack.region,
      template: template.toJSON() as CfnTemplate,
    },
    edge: edge && {
      stackName: `${stack.stackName}-Edge`,
      region: 'us-east-1',
      template: edge.toJSON() as CfnTemplate,
    },
    secondaries: secondaries.map((s) => ({
      stackName: s.stack.stackName,
      region: s.stack.region,
      template: s.template.toJSON() as CfnTemplate,
    })),
  };
  // Written whole, then renamed: another file's process reads it complete or not at all. The copy only
  // saves time: a write that fails (another process cleared the folder meanwhile) is left at that.
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const partial = `${file}.${process.pid}`;
    fs.writeFileSync(partial, JSON.stringify(templates));
    fs.renameSync(partial, file);
  } catch {
    // The next file to ask synthesizes the stage again.
  }
  return templates;
}
