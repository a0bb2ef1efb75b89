import { AppSource, UserStage } from '../../lib';
import { RELEASE_METADATA_KEY } from '../../lib/private/releases';
import { BootResult, commandLines, Machine } from './harness';
import { bootSuite, singleServer, StageServer } from './servers';

/**
 * Releases at stages 1 to 100, on a booted fake AL2023 instance: version 2 of the app reaches the
 * running server through the instance's metadata and cfn-hup's hook, without a stop and start (the
 * user data is the same for both versions, so CloudFormation changes only the metadata); a version 2
 * that fails its health check ends with version 1 serving again and the release's wait condition told
 * FAILURE, so the deploy fails and rolls back. The apps are container images; the curl stub's fault
 * app-unhealthy-image:<image> makes one of them unhealthy.
 */
const V1 = 'example/shop:1.0.0';
const V2 = 'example/shop:2.0.0';
const STAGES = [UserStage.USERS_1, UserStage.USERS_100];
const version = (stage: UserStage, image: string) =>
  singleServer(stage, { app: AppSource.fromContainerImage(image, { healthCheckPath: '/' }) });
const v1 = bootSuite(STAGES, (stage) => version(stage, V1));
const v2 = bootSuite(STAGES, (stage) => version(stage, V2));
const HOOK = '/opt/scale-stages/release/apply-release hook';

/** A running instance of version 1, booted and serving. */
function runningV1(stage: UserStage): Machine {
  const server = v1.server(stage);
  const machine = v1.machine({
    deployment: server.deployment,
    attachedVolumes: server.attachedVolumeIds.map((volumeId) => ({ volumeId })),
  });
  const boot = machine.boot(server.userData.script);
  expect({ status: boot.status, stderr: boot.status === 0 ? '' : boot.stderr }).toEqual({
    status: 0,
    stderr: '',
  });
  expect(runningImage(machine)).toBe(V1);
  return machine;
}

function runningImage(machine: Machine): string {
  return /^image=(.*)$/m.exec(machine.read('.harness/docker/containers/app'))![1];
}

function release(server: StageServer): { id: string; waitHandle: string } {
  const { id, waitHandle } = server.deployment.metadata(server.signalResource, RELEASE_METADATA_KEY);
  return { id, waitHandle };
}

/** What a release on the running machine must not do: anything of a boot. */
function expectNoBoot(result: BootResult): void {
  expect(commandLines(result, 'mount')).toEqual([]);
  expect(commandLines(result, 'mkfs.xfs')).toEqual([]);
  expect(commandLines(result, 'dnf').filter((line) => line.includes('aws-cfn-bootstrap'))).toEqual([]);
}

test.each(STAGES)(
  'stage %s: version 2 changes the instance metadata only: the same user data and instance, a wait condition of its own',
  (stage) => {
    const [one, two] = [v1.server(stage), v2.server(stage)];
    expect(two.signalResource).toBe(one.signalResource);
    expect(two.userData.raw).toBe(one.userData.raw);
    expect(release(two).id).not.toBe(release(one).id);
    expect(two.deployment.idsOfType('AWS::CloudFormation::WaitCondition')).toEqual([
      expect.stringContaining(`Release${release(two).id}`),
    ]);
    // cfn-hup watches the metadata of this instance.
    const machine = runningV1(stage);
    expect(machine.read('etc/cfn/hooks.d/scale-stages-release.conf')).toContain(
      `path=Resources.${one.signalResource}.Metadata.${RELEASE_METADATA_KEY}\naction=${HOOK}\n`,
    );
    expect(machine.read('etc/cfn/cfn-hup.conf')).toContain('interval=1');
    expect(machine.exists('.harness/systemd/enabled/cfn-hup.service')).toBe(true);
  },
);

test.each(STAGES)(
  'stage %s: a release reaches the running server without a stop and start, and tells its wait condition it is healthy',
  (stage) => {
    const machine = runningV1(stage);
    machine.update(v2.server(stage).deployment);
    const hook = machine.run(HOOK);
    expect(hook.status).toBe(0);
    expectNoBoot(hook);
    expect(commandLines(hook, 'docker').filter((line) => line.includes(' pull '))).toEqual([
      `docker pull --platform linux/${process.arch === 'arm64' ? 'arm64' : 'amd64'} ${V2}`,
    ]);
    expect(runningImage(machine)).toBe(V2);
    expect(hook.signals).toEqual([
      { at: expect.any(Number), exitCode: 0, url: release(v2.server(stage)).waitHandle },
    ]);
    expect(machine.read('opt/scale-stages/release/current').trim()).toBe(release(v2.server(stage)).id);
  },
);

test.each(STAGES)(
  'stage %s: a release that fails its health check ends with version 1 serving and the deploy failing',
  (stage) => {
    const machine = runningV1(stage);
    machine.update(v2.server(stage).deployment);
    const hook = machine.run(HOOK, [`app-unhealthy-image:${V2}`]);
    // The hook itself succeeds, so cfn-hup runs it again when the rollback brings version 1's metadata back.
    expect(hook.status).toBe(0);
    expectNoBoot(hook);
    expect(runningImage(machine)).toBe(V1);
    const [one, two] = [release(v1.server(stage)), release(v2.server(stage))];
    expect(hook.signals).toEqual([{ at: expect.any(Number), exitCode: 1, url: two.waitHandle }]);
    expect(hook.stderr).toContain(
      `apply-release: release ${two.id} did not become healthy; release ${one.id} serves again`,
    );
    expect(machine.read('opt/scale-stages/release/current').trim()).toBe(one.id);

    // The rollback: CloudFormation puts version 1's metadata back, and cfn-hup runs the hook again.
    machine.update(v1.server(stage).deployment);
    const rollback = machine.run(HOOK);
    expect(rollback.status).toBe(0);
    expect(runningImage(machine)).toBe(V1);
  },
);
