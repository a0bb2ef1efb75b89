import { UserStage } from '../../lib';
import { BootResult, commandLines, Machine } from './harness';
import { bootSuite, expectFleetSignal, fleetServer } from './servers';

/**
 * Boots the LoadBalancedTier's launch template user data (stages 1k to 1m) in a fake AL2023
 * instance: every new server must signal the Auto Scaling group, success or failure, before
 * CloudFormation's timeout, so a bad release rolls back at once.
 */
const STAGES = [UserStage.USERS_1K, UserStage.USERS_10K, UserStage.USERS_100K, UserStage.USERS_1M];
const suite = bootSuite(STAGES, fleetServer);
const server = suite.server;

function bootNew(stage: UserStage, faults: string[] = []): { machine: Machine; result: BootResult } {
  const machine = suite.machine({ deployment: server(stage).deployment });
  return { machine, result: machine.boot(server(stage).userData.script, faults) };
}

function expectSignal(stage: UserStage, result: BootResult, success: boolean): void {
  expectFleetSignal(server(stage), result, success);
}

test.each(STAGES)('stage %s: the fleet signals its Auto Scaling group, within 25 minutes', (stage) => {
  expect(server(stage).signalResource).toMatch(/ASG/);
  // 15 minutes to boot and start the app, and the release's 10-minute bake.
  expect(server(stage).signalTimeoutSeconds).toBe(25 * 60);
  expect(server(stage).userData.script.startsWith('#!/bin/bash\n')).toBe(true);
});

test.each(STAGES)('stage %s: a new server starts the app and signals success once', (stage) => {
  const { machine, result } = bootNew(stage);
  expectSignal(stage, result, true);
  // Stateless: no volume to format or mount.
  expect(commandLines(result, 'mkfs.xfs')).toEqual([]);
  expect(commandLines(result, 'mount')).toEqual([]);
  expect(machine.read('etc/scale-stages/app.env')).toMatch(/^DATABASE_HOST=\S+\.rds\.amazonaws\.com$/m);
  expect(machine.exists('.harness/systemd/enabled/scale-stages-app.service')).toBe(true);
});

test.each(STAGES)('stage %s: running the user data again changes nothing and signals success', (stage) => {
  const { machine, result } = bootNew(stage);
  expectSignal(stage, result, true);
  const env = machine.read('etc/scale-stages/app.env');
  const unit = machine.read('etc/systemd/system/scale-stages-app.service');
  const again = machine.boot();
  expectSignal(stage, again, true);
  expect(machine.read('etc/scale-stages/app.env')).toBe(env);
  expect(machine.read('etc/systemd/system/scale-stages-app.service')).toBe(unit);
});

test('stage 100k: the cache AUTH token reaches the app as a root-only credential file', () => {
  const { machine, result } = bootNew(UserStage.USERS_100K);
  expectSignal(UserStage.USERS_100K, result, true);
  expect(commandLines(result, 'aws').filter((line) => line.includes('secretsmanager'))).toEqual([
    expect.stringMatching(
      /^aws secretsmanager get-secret-value --secret-id arn:aws:secretsmanager:\S+ --query SecretString --output text$/,
    ),
  ]);
  expect(machine.read('etc/scale-stages/cache-auth-token')).toMatch(/^Pw[0-9a-f]+\n$/);
});

const FAILURES: [string, string[]][] = [
  ['the app runtime cannot be installed (dnf install nodejs fails)', ['dnf-fail:nodejs']],
  ['the app never answers its health check', ['app-unhealthy']],
];

describe.each([UserStage.USERS_1K, UserStage.USERS_100K])('stage %s', (stage) => {
  test.each(FAILURES)('signals FAILURE once, before the timeout, when %s', (_name, faults) => {
    expectSignal(stage, bootNew(stage, faults).result, false);
  });
});

test('stage 1k: signals FAILURE when the app hangs on its health check', () => {
  expectSignal(UserStage.USERS_1K, bootNew(UserStage.USERS_1K, ['app-hang']).result, false);
});

test('stage 100k: signals FAILURE when the cache secret cannot be read', () => {
  const { result } = bootNew(UserStage.USERS_100K, ['aws-denied']);
  expectSignal(UserStage.USERS_100K, result, false);
  expect(commandLines(result, 'systemctl')).not.toContain('systemctl restart scale-stages-app');
});

/** The name CloudFormation gives the stage's alarm `id` (Fleet5xx, FleetUnhealthy). */
function alarmName(stage: UserStage, id: string): string {
  const { deployment } = server(stage);
  const [alarm] = deployment
    .idsOfType('AWS::CloudWatch::Alarm')
    .filter((a) => a.startsWith(`Operations${id}`));
  return deployment.ref(alarm);
}

test.each(STAGES)(
  'stage %s: a new server bakes its release for 10 minutes, watching the fleet alarms, before it signals success',
  (stage) => {
    const { result } = bootNew(stage);
    expectSignal(stage, result, true);
    const watched = commandLines(result, 'aws').filter((line) =>
      line.startsWith('aws cloudwatch describe-alarms'),
    );
    expect(watched).toHaveLength(20);
    expect(watched[0]).toContain(
      `--alarm-names ${alarmName(stage, 'Fleet5xx')} ${alarmName(stage, 'FleetUnhealthy')} --state-value ALARM`,
    );
    expect(result.signals[0].at).toBeGreaterThanOrEqual(600);
    expect(result.stdout).toContain('release bake: the release stayed healthy for 600 s');
  },
);

test.each(STAGES)(
  'stage %s: a fleet alarm going off during the bake fails the new server, so the release rolls back',
  (stage) => {
    const { result } = bootNew(stage, [`alarm-fired:${alarmName(stage, 'Fleet5xx')}`]);
    expectSignal(stage, result, false);
    expect(result.stderr).toMatch(
      new RegExp(
        `release bake: alarm ${alarmName(stage, 'Fleet5xx')} went into ALARM at \\S+, during the bake; the release rolls back`,
      ),
    );
    expect(commandLines(result, 'aws').filter((line) => line.startsWith('aws cloudwatch'))).toHaveLength(1);
  },
);
