import { UserStage } from '../../lib';
import { BootResult, commandLines } from './harness';
import { bootSuite, expectFleetSignal, fleetServer } from './servers';

/**
 * Boots the stage-1m QueueWorkers' launch template user data in a fake AL2023 instance: a new
 * worker unpacks the demo worker, learns its Auto Scaling group (for scale-in protection), starts,
 * and signals its group once, success or failure, before CloudFormation's timeout.
 */
const STAGE = UserStage.USERS_1M;
const suite = bootSuite([STAGE], (stage) => fleetServer(stage, 'WorkersFleet'));

function boot(faults: string[] = []) {
  const machine = suite.machine({ deployment: suite.server(STAGE).deployment });
  return { machine, result: machine.boot(suite.server(STAGE).userData.script, faults) };
}

function expectSignal(result: BootResult, success: boolean): void {
  expectFleetSignal(suite.server(STAGE), result, success);
}

test('the workers signal their own Auto Scaling group, within 15 minutes', () => {
  expect(suite.server(STAGE).signalResource).toMatch(/^WorkersFleetASG/);
  expect(suite.server(STAGE).signalTimeoutSeconds).toBe(15 * 60);
});

test('a new worker unpacks the demo worker, learns its group, starts and signals success once', () => {
  const { machine, result } = boot();
  expectSignal(result, true);
  for (const file of ['worker.js', 'aws.js', 'aws-api.js', 'feed.js', 'png.js']) {
    expect(machine.exists(`opt/scale-stages/demo-app/${file}`)).toBe(true);
  }
  const env = machine.read('etc/scale-stages/app.env');
  expect(env).toMatch(/^JOB_QUEUE_URL=\S+$/m);
  expect(env).toMatch(/^JOB_VISIBILITY_TIMEOUT_SECONDS=300$/m);
  expect(env).toMatch(/^MEDIA_BUCKET=\S+$/m);
  expect(env).toMatch(/^WEB_BUCKET=\S+$/m);
  expect(env.match(/^WORKER_AUTO_SCALING_GROUP=harness-group$/gm)).toHaveLength(1);
  expect(commandLines(result, 'aws')).toContainEqual(
    expect.stringMatching(
      /^aws autoscaling describe-auto-scaling-instances --region \S+ --instance-ids i-\w+/,
    ),
  );
  expect(machine.read('etc/systemd/system/scale-stages-app.service')).toContain(
    'ExecStart=/usr/bin/node /opt/scale-stages/demo-app/worker.js',
  );
  expect(machine.exists('.harness/systemd/enabled/scale-stages-app.service')).toBe(true);
});

test('running the user data again writes the group once and signals success', () => {
  const { machine, result } = boot();
  expectSignal(result, true);
  const again = machine.boot(suite.server(STAGE).userData.script);
  expect(again.status).toBe(0);
  expect(machine.read('etc/scale-stages/app.env').match(/^WORKER_AUTO_SCALING_GROUP=/gm)).toHaveLength(1);
});

test('a worker whose app never answers its health check signals FAILURE once, before the timeout', () => {
  expectSignal(boot(['app-unhealthy']).result, false);
});
