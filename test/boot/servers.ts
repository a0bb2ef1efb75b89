import { execFileSync, spawnSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { App, Stack } from 'aws-cdk-lib';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import { UserStage } from '../../lib';
import { synthStage } from '../helpers';
import { assertSandboxWorks, BootResult, describeBoot, Machine } from './harness';
import { FAKE_REGION, FakeDeployment, RenderedUserData } from './userdata';

/** A server of a synthesized stage: its user data and what CloudFormation waits for. */
export interface StageServer {
  readonly stage: UserStage;
  readonly deployment: FakeDeployment;
  readonly userData: RenderedUserData;
  /** The logical id cfn-signal must name: the instance (stages 1-100) or the Auto Scaling group. */
  readonly signalResource: string;
  /** How long CloudFormation waits for the signal (CreationPolicy ResourceSignal Timeout). */
  readonly signalTimeoutSeconds: number;
  /** The fake ids of the EBS volumes CloudFormation attaches to the instance. */
  readonly attachedVolumeIds: string[];
}

interface TemplateResource {
  readonly Type: string;
  readonly Properties?: Record<string, unknown>;
  readonly CreationPolicy?: { ResourceSignal?: { Timeout?: string } };
}

/** Seconds of an ISO 8601 duration such as PT15M. */
export function isoSeconds(duration: string): number {
  const match = /^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?$/.exec(duration);
  if (!match) throw new Error(`not an ISO 8601 duration: ${duration}`);
  return Number(match[1] ?? 0) * 3600 + Number(match[2] ?? 0) * 60 + Number(match[3] ?? 0);
}

function refId(value: unknown): string | undefined {
  return value && typeof value === 'object' && 'Ref' in value
    ? String((value as { Ref: unknown }).Ref)
    : undefined;
}

/**
 * The file assets of a synthesized stack as `cdk deploy` uploads them (a folder zipped, a file as it
 * is), by asset hash: read now, while the app's output folder still holds them.
 */
function zippedAssets(stack: Stack): Map<string, Buffer> {
  const outdir = (stack.node.root as App).outdir;
  // python3's zipfile, which the harness needs anyway (dnf is Python), rather than a zip tool to install.
  const zip = [
    'import io, os, sys, zipfile',
    'out = io.BytesIO()',
    "with zipfile.ZipFile(out, 'w', zipfile.ZIP_DEFLATED) as z:",
    "    for d, _, files in os.walk('.'):",
    '        for f in files: z.write(os.path.join(d, f))',
    'sys.stdout.buffer.write(out.getvalue())',
  ].join('\n');
  const zips = new Map<string, Buffer>();
  for (const asset of stack.node.findAll().filter((c): c is s3assets.Asset => c instanceof s3assets.Asset)) {
    const staged = path.join(outdir, asset.assetPath);
    zips.set(
      asset.assetHash,
      fs.statSync(staged).isDirectory()
        ? execFileSync('python3', ['-c', zip], { cwd: staged, maxBuffer: 64 * 1024 * 1024 })
        : fs.readFileSync(staged),
    );
  }
  return zips;
}

/** Synthesizes a stage and finds its SingleServer instance (stages 1-100). */
export function singleServer(stage: UserStage, props: Parameters<typeof synthStage>[1] = {}): StageServer {
  const { stack, template } = synthStage(stage, props);
  const deployment = new FakeDeployment(template, 'ScaleStages', zippedAssets(stack));
  const resources = (template.toJSON() as { Resources: Record<string, TemplateResource> }).Resources;
  const instances = deployment.idsOfType('AWS::EC2::Instance');
  if (instances.length !== 1)
    throw new Error(`stage ${stage}: expected one instance, found ${instances.length}`);
  const [instanceId] = instances;
  const attachedVolumeIds = deployment
    .idsOfType('AWS::EC2::VolumeAttachment')
    .filter((id) => refId(deployment.properties(id).InstanceId) === instanceId)
    .map((id) => deployment.resolve(deployment.properties(id).VolumeId));
  return {
    stage,
    deployment,
    userData: deployment.instanceUserData(instanceId),
    signalResource: instanceId,
    signalTimeoutSeconds: isoSeconds(resources[instanceId].CreationPolicy?.ResourceSignal?.Timeout ?? 'PT0S'),
    attachedVolumeIds,
  };
}

/** Synthesizes a stage and finds its LoadBalancedTier fleet (stage 1k on). */
export function fleetServer(
  stage: UserStage,
  groupPrefix = 'WebFleet',
  props: Parameters<typeof synthStage>[1] = {},
): StageServer {
  const { stack, template } = synthStage(stage, props);
  const deployment = new FakeDeployment(template, 'ScaleStages', zippedAssets(stack));
  const resources = (template.toJSON() as { Resources: Record<string, TemplateResource> }).Resources;
  const groups = deployment.idsOfType('AWS::AutoScaling::AutoScalingGroup').filter((id) => {
    const spec = deployment.properties(id).LaunchTemplate as { LaunchTemplateId?: unknown } | undefined;
    return (
      id.startsWith(groupPrefix) &&
      spec?.LaunchTemplateId !== undefined &&
      resources[id].CreationPolicy?.ResourceSignal !== undefined
    );
  });
  if (groups.length !== 1)
    throw new Error(`stage ${stage}: expected one signalling Auto Scaling group, found ${groups.length}`);
  const [groupId] = groups;
  const spec = deployment.properties(groupId).LaunchTemplate as { LaunchTemplateId: unknown };
  const launchTemplateId = (spec.LaunchTemplateId as { Ref?: string }).Ref;
  if (!launchTemplateId) throw new Error(`stage ${stage}: the group's launch template is not a Ref`);
  return {
    stage,
    deployment,
    userData: deployment.launchTemplateUserData(launchTemplateId),
    signalResource: groupId,
    signalTimeoutSeconds: isoSeconds(resources[groupId].CreationPolicy?.ResourceSignal?.Timeout ?? 'PT0S'),
    attachedVolumeIds: [],
  };
}

/**
 * Files of this machine the user data would write to if it ever escaped the sandbox, with their
 * hashes (or absence), to compare before and after a suite.
 */
export function hostFingerprint(): Record<string, string> {
  const paths = [
    '/etc/fstab',
    '/etc/passwd',
    '/etc/group',
    '/etc/scale-stages',
    '/etc/systemd/system/scale-stages-app.service',
    '/etc/systemd/system/postgresql.service.d',
    '/opt/aws',
    '/data',
    '/dev/disk',
    '/var/lib/cloud',
  ];
  const fingerprint: Record<string, string> = {};
  for (const file of paths) {
    if (!fs.existsSync(file)) fingerprint[file] = 'absent';
    else if (fs.statSync(file).isDirectory())
      fingerprint[file] = `directory: ${fs.readdirSync(file).sort().join(',')}`;
    else fingerprint[file] = crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  }
  return fingerprint;
}

/** The installed shellcheck, or an error that says how to install it. */
export function requireShellcheck(): string {
  const probe = spawnSync('shellcheck', ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    throw new Error(
      'shellcheck is not installed, and the user data must pass it. Install it with ' +
        '`apt-get install -y shellcheck` (Debian 12 package shellcheck, 0.9.0), then run the tests again.',
    );
  }
  return /version: (\S+)/.exec(probe.stdout)?.[1] ?? 'unknown';
}

/** The servers of a boot test file and the fake machines it creates, cleaned up after the file. */
export interface BootSuite {
  /** The synthesized server of a stage. */
  server(stage: UserStage): StageServer;
  /** Creates a fake machine that the suite destroys after the file. */
  machine(options: Parameters<typeof Machine.create>[0]): Machine;
}

/**
 * Sets up a boot test file: checks the sandbox works and synthesizes each stage once before the
 * tests, and afterwards destroys every machine and checks the host was not touched.
 */
export function bootSuite(stages: UserStage[], synthesize: (stage: UserStage) => StageServer): BootSuite {
  const servers = new Map<UserStage, StageServer>();
  const machines: Machine[] = [];
  const hostBefore = hostFingerprint();
  beforeAll(() => {
    assertSandboxWorks();
    for (const stage of stages) servers.set(stage, synthesize(stage));
  });
  afterAll(() => {
    for (const machine of machines) machine.destroy();
    expect(hostFingerprint()).toEqual(hostBefore);
  });
  return {
    server: (stage) => {
      const found = servers.get(stage);
      if (!found) throw new Error(`stage ${stage} was not synthesized`);
      return found;
    },
    machine: (options) => {
      const machine = Machine.create(options);
      machines.push(machine);
      return machine;
    },
  };
}

/**
 * A fleet server's boot signalled its Auto Scaling group exactly once, with the boot's exit status,
 * before CloudFormation's timeout, as its last command.
 */
export function expectFleetSignal(server: StageServer, result: BootResult, success: boolean): void {
  if (success) {
    expect({ status: result.status, log: result.status === 0 ? '' : describeBoot(result) }).toEqual({
      status: 0,
      log: '',
    });
  } else {
    expect(result.status).toBeGreaterThan(0);
  }
  expect(result.signals).toEqual([
    {
      at: expect.any(Number),
      stack: 'ScaleStages',
      resource: server.signalResource,
      region: FAKE_REGION,
      exitCode: result.status,
    },
  ]);
  expect(result.signals[0].at).toBeLessThan(server.signalTimeoutSeconds);
  expect(result.calls[result.calls.length - 1].command).toBe('cfn-signal');
}
