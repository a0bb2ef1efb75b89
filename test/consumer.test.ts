/**
 * The README's "Use it in your own CDK app", done as a new user does it: pack the library
 * (`npm pack`, whose prepack step builds it with jsii), install the tarball into a copy of
 * examples/consumer with `npm install <tarball>`, type-check that app with its own `tsc` and
 * synthesize it with its own CDK CLI.
 *
 * Offline, and provably so: npm, the CLI and the apps run inside `unshare --net` (no network at all)
 * and npm with `offline=true`, so packages come only from npm's cache, which `npm ci` in this
 * repository filled. One difference from a user's machine: npm resolves versions from the
 * registry's package documents, which `npm ci` does not cache, so the copy gets a package-lock.json
 * cut from this repository's lockfile. The example pins the same versions as this repository, so
 * only transitive dependencies could resolve differently online.
 */
import { execFile, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { promisify } from 'util';
import { TestedFeatureFlags } from '../lib/feature-flags';

const ROOT = path.join(__dirname, '..');
const EXAMPLE = path.join(ROOT, 'examples', 'consumer');
/** The stage examples/consumer/bin/app.ts builds. */
const STAGE = '1k';
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));

interface Assembly {
  readonly dir: string;
  readonly manifest: { artifacts: Record<string, { type: string; properties?: Record<string, unknown> }> };
  /** The CLI's output. */
  readonly log: string;
}

/** Runs a program; a failure throws with everything it printed. */
async function run(file: string, args: string[], cwd: string): Promise<string> {
  try {
    const { stdout, stderr } = await promisify(execFile)(file, args, {
      cwd,
      env: childEnv(),
      maxBuffer: 64 * 1024 * 1024,
    });
    return `${stdout}${stderr}`;
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(
      `${[file, ...args].join(' ')} failed in ${cwd}:\n${e.stdout ?? ''}${e.stderr ?? e.message}`,
    );
  }
}

/** Runs a program with no network. */
function offline(file: string, args: string[], cwd: string): Promise<string> {
  return run('unshare', ['--net', '--', file, ...args], cwd);
}

/** The environment without what `npm test` adds for its scripts (npm_*), and npm told to stay offline. */
function childEnv(): NodeJS.ProcessEnv {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(
      ([key]) => !/^npm_/i.test(key) && !/^CDK_(CONTEXT_JSON|OUTDIR)$/.test(key),
    ),
  );
  return { ...env, npm_config_offline: 'true', npm_config_audit: 'false', npm_config_fund: 'false' };
}

/**
 * Writes the app's package-lock.json with the entries of this repository's lockfile that its
 * dependencies reach, found the way Node resolves them (nearest node_modules first).
 */
function writeLockfile(app: string): void {
  const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8'));
  const manifest = JSON.parse(fs.readFileSync(path.join(app, 'package.json'), 'utf8'));
  const { name, version, dependencies, devDependencies } = manifest;
  const packages: Record<string, unknown> = { '': { name, version, dependencies, devDependencies } };
  const queue: [string, Record<string, string>, boolean][] = [
    ['', { ...dependencies, ...devDependencies }, true],
  ];
  while (queue.length > 0) {
    const [from, deps, required] = queue.shift()!;
    for (const dep of Object.keys(deps)) {
      let at = from;
      let found = `node_modules/${dep}`;
      for (;;) {
        const candidate = `${at ? `${at}/` : ''}node_modules/${dep}`;
        if (lock.packages[candidate]) {
          found = candidate;
          break;
        }
        if (!at) break;
        at = at.replace(/\/?node_modules\/(@[^/]+\/)?[^/]+$/, '');
      }
      if (!lock.packages[found]) {
        if (required) throw new Error(`${dep} (needed by ${from || 'the app'}) is not in package-lock.json`);
        continue;
      }
      if (packages[found]) continue;
      // Dependency flags (dev, peer ...) describe this repository's tree; npm works them out again.
      const entry = Object.fromEntries(
        Object.entries(lock.packages[found]).filter(([key]) => !['dev', 'devOptional', 'peer'].includes(key)),
      ) as { dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> };
      packages[found] = entry;
      queue.push([found, entry.dependencies ?? {}, true], [found, entry.optionalDependencies ?? {}, false]);
    }
  }
  fs.writeFileSync(
    path.join(app, 'package-lock.json'),
    JSON.stringify({ name, version, lockfileVersion: 3, requires: true, packages }, null, 2),
  );
}

function readAssembly(dir: string, log: string): Assembly {
  return { dir, log, manifest: JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) };
}

function stackNames(assembly: Assembly): string[] {
  return Object.entries(assembly.manifest.artifacts)
    .filter(([, artifact]) => artifact.type === 'aws:cloudformation:stack')
    .map(([id]) => id)
    .sort();
}

/** A stack's synthesized template. */
function template(
  assembly: Assembly,
  stack: string,
): { Resources: Record<string, { Type: string; Properties?: Record<string, unknown> }> } {
  return JSON.parse(fs.readFileSync(path.join(assembly.dir, `${stack}.template.json`), 'utf8'));
}

/** How many resources of each type a stack has. */
function resourceTypes(assembly: Assembly, stack: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const resource of Object.values(template(assembly, stack).Resources)) {
    counts[resource.Type] = (counts[resource.Type] ?? 0) + 1;
  }
  return counts;
}

function filesUnder(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((file) => fs.statSync(path.join(dir, file)).isFile())
    .sort();
}

test('the example pins the versions this repository is built and tested with', () => {
  const example = JSON.parse(fs.readFileSync(path.join(EXAMPLE, 'package.json'), 'utf8'));
  const pins = { ...example.dependencies, ...example.devDependencies };
  expect(Object.keys(pins).sort()).toEqual([
    '@types/node',
    'aws-cdk',
    'aws-cdk-lib',
    'constructs',
    'tsx',
    'typescript',
  ]);
  for (const [name, version] of Object.entries(pins)) {
    expect([name, version]).toEqual([name, pkg.devDependencies[name]]);
  }
});

test("the README's install commands name this release's tarball and the pinned versions", () => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Use it in your own CDK app'));
  const block = section.slice(section.indexOf('```sh'), section.indexOf('```', section.indexOf('```sh') + 5));
  const tarball = `${pkg.name}-${pkg.version}.tgz`;
  expect(block).toContain(`npm pack)   # builds with jsii, writes ${tarball}`);
  expect(block).toContain(`npm install ./${pkg.name}/${tarball}`);
  for (const name of ['aws-cdk-lib', 'constructs']) {
    expect(block).toContain(`${name}@${pkg.devDependencies[name]}`);
  }
  expect(block).toContain(`npm install --save-dev aws-cdk@${pkg.devDependencies['aws-cdk']}`);
});

describe('an app of your own, with the library installed from its packed tarball', () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'scale-stages-consumer-'));
  const app = path.join(work, 'app');
  const installed = path.join(app, 'node_modules', pkg.name);
  let consumer: Assembly;
  let repository: Assembly;

  beforeAll(async () => {
    const probe = spawnSync('unshare', ['--net', '--', 'true'], { encoding: 'utf8' });
    if (probe.status !== 0) {
      throw new Error(
        `this test installs and synthesizes inside 'unshare --net' (util-linux, as root) to prove it needs no network; unshare failed: ${probe.error?.message ?? probe.stderr}`,
      );
    }

    const installAndSynth = async () => {
      await run('npm', ['pack', '--pack-destination', work], ROOT);
      const tarball = path.join(work, `${pkg.name}-${pkg.version}.tgz`);
      fs.cpSync(EXAMPLE, app, {
        recursive: true,
        filter: (source) => !/[\\/](node_modules|cdk\.out)$/.test(source),
      });
      writeLockfile(app);
      await offline('npm', ['install', tarball], app);
      await run(path.join(app, 'node_modules', '.bin', 'tsc'), ['-p', '.'], app);
      const log = await offline(
        path.join(app, 'node_modules', '.bin', 'cdk'),
        ['synth', '--no-notices'],
        app,
      );
      return readAssembly(path.join(app, 'cdk.out'), log);
    };
    // This repository's own app at the same stage, as `npx cdk synth -c stage=1k` runs it.
    const repositorySynth = async () => {
      const out = path.join(work, 'repository.out');
      const cdk = path.join(ROOT, 'node_modules', '.bin', 'cdk');
      const log = await offline(
        cdk,
        ['synth', '-c', `stage=${STAGE}`, '-o', out, '--no-notices', '--quiet'],
        ROOT,
      );
      return readAssembly(out, log);
    };
    // Both finish before a failure is reported, so that nothing still writes to `work` when it goes.
    const [ours, theirs] = await Promise.allSettled([installAndSynth(), repositorySynth()]);
    if (ours.status === 'rejected') throw ours.reason;
    if (theirs.status === 'rejected') throw theirs.reason;
    [consumer, repository] = [ours.value, theirs.value];
  }, 180_000);

  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

  test('the tarball holds the build, its types, the jsii assembly, the README and every asset', () => {
    for (const file of ['package.json', 'README.md', '.jsii', 'dist/index.js', 'dist/index.d.ts']) {
      expect(fs.existsSync(path.join(installed, file))).toBe(true);
    }
    expect(filesUnder(path.join(installed, 'assets'))).toEqual(filesUnder(path.join(ROOT, 'assets')));
  });

  test("the installed package is this repository's version", () => {
    expect(JSON.parse(fs.readFileSync(path.join(installed, 'package.json'), 'utf8')).version).toBe(
      pkg.version,
    );
    expect(JSON.parse(fs.readFileSync(path.join(installed, '.jsii'), 'utf8')).version).toBe(pkg.version);
    const manifest = JSON.parse(fs.readFileSync(path.join(app, 'package.json'), 'utf8'));
    expect(manifest.dependencies[pkg.name]).toMatch(/^file:.*\.tgz$/);
  });

  test("the app's stacks: the stage's two, its pipeline, the stage in its own VPC, stage 10m's three, and constructs used alone", () => {
    // The pipeline's stack, and the support stack in us-east-1 where its edge stack deploys.
    expect(stackNames(consumer)).toEqual([
      'Global',
      'Global-Edge',
      'Global-eu-central-1',
      'Intranet',
      'Intranet-Edge',
      'Platform',
      'Reports',
      'Shop',
      'Shop-Edge',
      'ShopPipeline',
      'cross-region-stack-111111111111_us-east-1',
    ]);
    expect(resourceTypes(consumer, 'ShopPipeline')['AWS::CodePipeline::Pipeline']).toBe(1);
    expect(resourceTypes(consumer, 'Reports')).toMatchObject({
      'AWS::EC2::VPC': 1,
      'AWS::RDS::DBInstance': 1,
      'AWS::SQS::Queue': 2,
      'AWS::AutoScaling::AutoScalingGroup': 1,
    });
  });

  test(`stage ${STAGE} in the app's own VPC: the stage's resources less a network, in the Platform stack's subnets`, () => {
    const network = ['AWS::EC2::VPC', 'AWS::EC2::Subnet', 'AWS::EC2::NatGateway', 'AWS::EC2::RouteTable'];
    const shop = resourceTypes(consumer, 'Shop');
    const intranet = resourceTypes(consumer, 'Intranet');
    for (const type of network)
      expect([type, shop[type] > 0, intranet[type]]).toEqual([type, true, undefined]);
    expect(intranet['AWS::ElasticLoadBalancingV2::LoadBalancer']).toBe(1);
    expect(intranet['AWS::RDS::DBInstance']).toBe(1);
    const [fleet] = Object.values(template(consumer, 'Intranet').Resources).filter(
      (r) => r.Type === 'AWS::AutoScaling::AutoScalingGroup',
    );
    expect(JSON.stringify(fleet.Properties?.VPCZoneIdentifier)).toMatch(/"StackName":"Platform"|Platform:/);
  });

  test('the realtime service runs as a second service in each region: its own servers behind the load balancer, at /ws/*', () => {
    for (const stack of ['Global', 'Global-eu-central-1']) {
      // The fleet, the workers and the service.
      expect(resourceTypes(consumer, stack)['AWS::AutoScaling::AutoScalingGroup']).toBe(3);
      const resources = template(consumer, stack).Resources;
      const [rule] = Object.values(resources).filter(
        (r) => r.Type === 'AWS::ElasticLoadBalancingV2::ListenerRule',
      );
      expect(JSON.stringify(rule.Properties)).toContain('"Values":["/ws/*"]');
      const realtime = Object.entries(resources).find(
        ([id, r]) => id.startsWith('Servicesrealtime') && r.Type === 'AWS::EC2::LaunchTemplate',
      )!;
      expect(JSON.stringify(realtime[1].Properties)).toContain('realtime.js');
    }
  });

  test('MultiRegion composed by the app: a cross-region replica of the primary, reached through a VPC origin', () => {
    expect(resourceTypes(consumer, 'Global-eu-central-1')).toMatchObject({
      'AWS::RDS::DBInstance': 1,
      'AWS::ElasticLoadBalancingV2::LoadBalancer': 1,
      'AWS::ElastiCache::ReplicationGroup': 1,
    });
    expect(resourceTypes(consumer, 'Global')).toMatchObject({
      'AWS::CloudFront::VpcOrigin': 2,
      'AWS::CloudFront::KeyValueStore': 1,
    });
    const replica = JSON.stringify(template(consumer, 'Global-eu-central-1'));
    expect(replica).toContain('"SourceRegion":"eu-west-1"');
  });

  test(`the stage has exactly the resources of this repository's app at stage ${STAGE}`, () => {
    expect(stackNames(repository)).toEqual(['ScaleStages', 'ScaleStages-Edge']);
    expect(resourceTypes(consumer, 'Shop')).toEqual(resourceTypes(repository, 'ScaleStages'));
    expect(resourceTypes(consumer, 'Shop-Edge')).toEqual(resourceTypes(repository, 'ScaleStages-Edge'));
  });

  test('the tested feature flags apply: the assembly reports every one as set, the CLI none as missing', () => {
    const report = Object.values(consumer.manifest.artifacts).find(
      (a) => a.type === 'cdk:feature-flag-report',
    );
    const flags = report?.properties?.flags as Record<string, { userValue?: unknown }>;
    const set = Object.fromEntries(
      Object.keys(TestedFeatureFlags.CONTEXT).map((key) => [key, flags[key]?.userValue]),
    );
    expect(set).toEqual(TestedFeatureFlags.CONTEXT);
    expect(consumer.log).not.toMatch(/feature flags are not configured/);
  });
});
