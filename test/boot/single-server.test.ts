import * as fs from 'fs';
import { UserStage } from '../../lib';
import { BootResult, commandLines, describeBoot, Machine } from './harness';
import { bootSuite, singleServer } from './servers';
import { RELEASE_METADATA_KEY } from '../../lib/private/releases';
import { FAKE_REGION } from './userdata';

/**
 * Boots the SingleServer's rendered user data (stages 1, 10 and 100) in a fake AL2023 instance:
 * first boot, reboot, in-place upgrade, and failures that must reach CloudFormation as a FAILURE
 * signal before its timeout.
 */
const STAGES = [UserStage.USERS_1, UserStage.USERS_10, UserStage.USERS_100];
const suite = bootSuite(STAGES, singleServer);
const server = suite.server;

/** A new instance of the stage's server, with its data volume attached (or not). */
function launch(stage: UserStage, options: { attached?: boolean; delaySeconds?: number } = {}): Machine {
  const s = server(stage);
  return suite.machine({
    deployment: s.deployment,
    attachedVolumes:
      options.attached === false ? [] : s.attachedVolumeIds.map((volumeId) => ({ volumeId, ...options })),
  });
}

function volumeId(stage: UserStage): string {
  const [id] = server(stage).attachedVolumeIds;
  return id;
}

/** The handle URL of the release in the server's metadata, as cfn-get-metadata prints it. */
function releaseHandle(stage: UserStage): string {
  const s = server(stage);
  return s.deployment.metadata(s.signalResource, RELEASE_METADATA_KEY).waitHandle;
}

/**
 * Asserts a boot succeeded: it told the release's wait condition that the release is healthy, and
 * the instance's creation policy, exactly once each, the instance last.
 */
function expectSuccess(stage: UserStage, result: BootResult): void {
  const s = server(stage);
  expect({
    status: result.status,
    blocked: result.blocked,
    log: result.status === 0 ? '' : describeBoot(result),
  }).toEqual({
    status: 0,
    blocked: undefined,
    log: '',
  });
  expect(result.signals).toEqual([
    { at: expect.any(Number), exitCode: 0, url: releaseHandle(stage) },
    {
      at: expect.any(Number),
      stack: 'ScaleStages',
      resource: s.signalResource,
      region: FAKE_REGION,
      exitCode: 0,
    },
  ]);
  expect(result.calls[result.calls.length - 1].command).toBe('cfn-signal');
}

/**
 * Asserts a boot failed and sent the instance one FAILURE signal before CloudFormation's timeout, as
 * its last act; a release that ran and failed also told its wait condition.
 */
function expectFailureSignal(stage: UserStage, result: BootResult): void {
  const s = server(stage);
  expect(result.status).not.toBe(0);
  const toInstance = result.signals.filter((signal) => signal.resource !== undefined);
  expect(toInstance).toHaveLength(1);
  const [signal] = toInstance;
  expect(signal).toMatchObject({ stack: 'ScaleStages', resource: s.signalResource, region: FAKE_REGION });
  expect(signal.exitCode).toBe(result.status);
  expect(signal.exitCode).toBeGreaterThan(0);
  expect(signal.at).toBeLessThan(s.signalTimeoutSeconds);
  for (const toRelease of result.signals.filter((r) => r.url !== undefined)) {
    expect(toRelease).toMatchObject({ url: releaseHandle(stage), exitCode: 1 });
  }
  expect(result.calls[result.calls.length - 1].command).toBe('cfn-signal');
}

test.each(STAGES)('stage %s: cloud-init runs the user data at every boot', (stage) => {
  expect(server(stage).userData.cloudConfig).toMatch(/cloud_final_modules:\n- \[scripts-user, always\]/);
  expect(server(stage).userData.script.startsWith('#!/bin/bash\n')).toBe(true);
  expect(server(stage).signalTimeoutSeconds).toBe(15 * 60);
  expect(server(stage).attachedVolumeIds).toEqual([expect.stringMatching(/^vol-0[0-9a-f]{16}$/)]);
});

test.each(STAGES)(
  'stage %s: the first boot formats and mounts the data volume and signals success once',
  (stage) => {
    const machine = launch(stage);
    const result = machine.boot(server(stage).userData.script);
    expectSuccess(stage, result);

    const vol = volumeId(stage);
    const device = `/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${vol.replace('-', '')}`;
    expect(commandLines(result, 'mkfs.xfs')).toEqual([`mkfs.xfs -L scale-data ${device}`]);
    const uuid = machine.read(`.harness/ebs/${vol}/uuid`).trim();
    const fstab = machine.read('etc/fstab').split('\n');
    expect(fstab.filter((line) => line.includes('/data'))).toEqual([
      `UUID=${uuid} /data xfs defaults,nofail 0 2`,
    ]);
    expect(commandLines(result, 'mount')).toEqual(['mount /data']);
    // The app's environment file is root-only and names the region.
    expect(machine.read('etc/scale-stages/app.env')).toContain(`AWS_REGION=${FAKE_REGION}`);
    expect(machine.exists('etc/systemd/system/scale-stages-app.service')).toBe(true);
    expect(machine.exists('.harness/systemd/enabled/scale-stages-app.service')).toBe(true);
  },
);

test('stage 1: the first boot initializes PostgreSQL on the data volume and creates the app role', () => {
  const machine = launch(UserStage.USERS_1);
  const result = machine.boot(server(UserStage.USERS_1).userData.script);
  expectSuccess(UserStage.USERS_1, result);
  const initdb = result.calls.filter((call) => call.command === 'initdb');
  expect(initdb).toEqual([
    expect.objectContaining({ user: 'postgres', args: expect.arrayContaining(['/data/pgsql/data']) }),
  ]);
  // PGDATA is on the volume, not on the root disk under the mount point.
  expect(machine.exists(`.harness/ebs/${volumeId(UserStage.USERS_1)}/fs/pgsql/data/PG_VERSION`)).toBe(true);
  expect(machine.exists('data/pgsql')).toBe(false);
  expect(machine.exists('.harness/systemd/enabled/postgresql.service')).toBe(true);
  const [sql] = machine.psqlInputs(result.boot);
  expect(sql).toMatch(/CREATE ROLE %I LOGIN/);
  expect(sql).toMatch(/ALTER ROLE :"user" WITH LOGIN PASSWORD :'password'/);
  expect(commandLines(result, 'psql')).toEqual([expect.stringContaining('-v user=app -v password=Pw')]);
});

test.each([UserStage.USERS_10, UserStage.USERS_100])(
  'stage %s: no PostgreSQL runs on the server',
  (stage) => {
    const result = launch(stage).boot(server(stage).userData.script);
    expectSuccess(stage, result);
    expect(commandLines(result, 'initdb')).toEqual([]);
    expect(commandLines(result, 'dnf').some((line) => line.includes('postgresql'))).toBe(false);
  },
);

test.each(STAGES)(
  'stage %s: a reboot formats nothing, keeps /etc/fstab and the data, and signals success',
  (stage) => {
    const machine = launch(stage);
    expectSuccess(stage, machine.boot(server(stage).userData.script));
    const vol = volumeId(stage);
    const before = {
      fstab: machine.read('etc/fstab'),
      env: machine.read('etc/scale-stages/app.env'),
      uuid: machine.read(`.harness/ebs/${vol}/uuid`),
    };
    // Data the app wrote to the volume between the boots.
    const sentinel = machine.path(`.harness/ebs/${vol}/fs/kept-across-reboots`);
    fs.writeFileSync(sentinel, 'data\n');

    const reboot = machine.boot();
    expectSuccess(stage, reboot);
    expect(commandLines(reboot, 'mkfs.xfs')).toEqual([]);
    expect(commandLines(reboot, 'initdb')).toEqual([]);
    // systemd mounted /data from the fstab line before the user data ran.
    expect(commandLines(reboot, 'mount')).toEqual([]);
    expect(reboot.systemLog).toBe('');
    expect({
      fstab: machine.read('etc/fstab'),
      env: machine.read('etc/scale-stages/app.env'),
      uuid: machine.read(`.harness/ebs/${vol}/uuid`),
    }).toEqual(before);
    expect(machine.read(`.harness/ebs/${vol}/formats`).trim()).toBe('1');
    expect(machine.exists(`.harness/ebs/${vol}/fs/kept-across-reboots`)).toBe(true);
  },
);

test('stage 1 -> 10 in place: the new user data keeps the volume and moves the database before the app starts; without RDS (the sandbox has none) it signals FAILURE and leaves the data', () => {
  const machine = launch(UserStage.USERS_1);
  expectSuccess(UserStage.USERS_1, machine.boot(server(UserStage.USERS_1).userData.script));
  // CloudFormation changes the instance's metadata, stops it, changes its user data and starts it (same
  // instance).
  expect(server(UserStage.USERS_10).signalResource).toBe(server(UserStage.USERS_1).signalResource);
  expect(volumeId(UserStage.USERS_10)).toBe(volumeId(UserStage.USERS_1));
  machine.update(server(UserStage.USERS_10).deployment);
  const upgrade = machine.boot(server(UserStage.USERS_10).userData.script);
  // The migration itself is tested against two real PostgreSQL servers in test/migration.test.ts;
  // here it reads the RDS secret, which the sandbox does not have, and the boot fails so that
  // CloudFormation rolls back rather than start the app on an empty database.
  expectFailureSignal(UserStage.USERS_10, upgrade);
  expect(commandLines(upgrade, 'mkfs.xfs')).toEqual([]);
  const stopApp = commandLines(upgrade, 'systemctl').indexOf('systemctl stop scale-stages-app');
  expect(stopApp).toBeGreaterThanOrEqual(0);
  expect(commandLines(upgrade, 'aws').some((c) => c.includes('secretsmanager get-secret-value'))).toBe(true);
  expect(commandLines(upgrade, 'systemctl')).toContain('systemctl disable --now postgresql');
  expect(machine.exists(`.harness/ebs/${volumeId(UserStage.USERS_1)}/fs/pgsql/data/PG_VERSION`)).toBe(true);
  expect(machine.exists(`.harness/ebs/${volumeId(UserStage.USERS_1)}/fs/pgsql/migrated-to-rds`)).toBe(false);
  expect(commandLines(upgrade, 'systemctl')).not.toContain('systemctl restart scale-stages-app');
});

test.each([UserStage.USERS_1, UserStage.USERS_10])(
  'stage %s: a data volume that attaches 40 s late is waited for',
  (stage) => {
    const result = launch(stage, { delaySeconds: 40 }).boot(server(stage).userData.script);
    expectSuccess(stage, result);
    expect(result.signals[0].at).toBeGreaterThanOrEqual(40);
  },
);

const FAILURES: [string, string[], { attached?: boolean }][] = [
  ['the app runtime cannot be installed (dnf install nodejs fails)', ['dnf-fail:nodejs'], {}],
  ['the data volume never appears', [], { attached: false }],
  ['the app never answers its health check', ['app-unhealthy'], {}],
];

test('stage 1: signals FAILURE once, before the timeout, when the app hangs on its health check', () => {
  const result = launch(UserStage.USERS_1).boot(server(UserStage.USERS_1).userData.script, ['app-hang']);
  expectFailureSignal(UserStage.USERS_1, result);
  // 60 tries of at most 5 s each, 5 s apart.
  expect(result.signals[0].at).toBeGreaterThanOrEqual(600);
});

describe.each([UserStage.USERS_1, UserStage.USERS_10])('stage %s', (stage) => {
  test.each(FAILURES)('signals FAILURE once, before the timeout, when %s', (_name, faults, options) => {
    const result = launch(stage, options).boot(server(stage).userData.script, faults);
    expectFailureSignal(stage, result);
  });
});

test('stage 1: signals FAILURE when the database secret cannot be read', () => {
  const result = launch(UserStage.USERS_1).boot(server(UserStage.USERS_1).userData.script, ['aws-denied']);
  expectFailureSignal(UserStage.USERS_1, result);
  expect(commandLines(result, 'systemctl')).not.toContain('systemctl restart scale-stages-app');
});

test('stage 1: a PostgreSQL package that fails to install signals FAILURE before anything else runs', () => {
  const result = launch(UserStage.USERS_1).boot(server(UserStage.USERS_1).userData.script, [
    'dnf-fail:postgresql16-server',
  ]);
  expectFailureSignal(UserStage.USERS_1, result);
  expect(commandLines(result, 'initdb')).toEqual([]);
});

test('a repository glitch while installing cfn-signal is retried, and the boot still signals', () => {
  const result = launch(UserStage.USERS_1).boot(server(UserStage.USERS_1).userData.script, [
    'dnf-flaky:aws-cfn-bootstrap:2',
  ]);
  expectSuccess(UserStage.USERS_1, result);
  expect(commandLines(result, 'dnf').filter((line) => line.includes('aws-cfn-bootstrap'))).toHaveLength(3);
  expect(commandLines(result, 'sleep').slice(0, 2)).toEqual(['sleep 15', 'sleep 15']);
});

test('known limit: when cfn-signal can never be installed, no signal can be sent', () => {
  // The AL2023 AMI has no cfn-signal (amazonlinux/amazon-linux-2023 issue 768), so if dnf can never
  // install aws-cfn-bootstrap the EXIT trap has nothing to call, and CloudFormation waits for its
  // timeout. The boot still stops at once and says why.
  const result = launch(UserStage.USERS_1).boot(server(UserStage.USERS_1).userData.script, [
    'dnf-fail:aws-cfn-bootstrap',
  ]);
  expect(result.status).not.toBe(0);
  expect(result.signals).toEqual([]);
  expect(result.stdout).toContain('Failed to send Cloudformation Signal');
  expect(commandLines(result, 'dnf')).toHaveLength(5);
  expect(commandLines(result, 'mkfs.xfs')).toEqual([]);
});
