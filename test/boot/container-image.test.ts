import { execFileSync } from 'child_process';
import { AppSource, UserStage } from '../../lib';
import { commandLines } from './harness';
import { bootSuite, expectFleetSignal, fleetServer } from './servers';

/**
 * Boots a fleet server whose app is a container image, in a fake AL2023 instance on this machine's
 * platform: the server pulls the image for its own platform, and an image without that variant fails
 * the boot (a FAILURE signal, so the release rolls back) with a message that says what to do. On
 * Graviton servers (the default) the platform is linux/arm64. The docker stub gives an image named
 * `<name>-only-<arch>` that platform alone.
 */
const platform = { aarch64: 'arm64', x86_64: 'amd64' }[
  execFileSync('uname', ['-m'], { encoding: 'utf8' }).trim()
];
const other = platform === 'arm64' ? 'amd64' : 'arm64';
const IMAGES = {
  [UserStage.USERS_1K]: `example/shop-only-${platform}:1.0`,
  [UserStage.USERS_10K]: `example/shop-only-${other}:1.0`,
};
const suite = bootSuite([UserStage.USERS_1K, UserStage.USERS_10K], (stage) =>
  fleetServer(stage, 'WebFleet', { app: AppSource.fromContainerImage(IMAGES[stage as keyof typeof IMAGES]) }),
);

test(`an image with a linux/${platform} variant: pulled for linux/${platform}, run, and the boot signals success`, () => {
  const server = suite.server(UserStage.USERS_1K);
  const result = suite.machine({ deployment: server.deployment }).boot(server.userData.script);
  expectFleetSignal(server, result, true);
  expect(commandLines(result, 'docker').filter((line) => line.includes('pull'))).toEqual([
    `docker pull --platform linux/${platform} ${IMAGES[UserStage.USERS_1K]}`,
  ]);
});

test(`an image without a linux/${platform} variant fails the boot, saying what to do`, () => {
  const server = suite.server(UserStage.USERS_10K);
  const result = suite.machine({ deployment: server.deployment }).boot(server.userData.script);
  expectFleetSignal(server, result, false);
  expect(result.stderr).toContain(
    `${IMAGES[UserStage.USERS_10K]} has no linux/${platform} variant, which these servers run: build and push it for linux/arm64 too (docker buildx build --platform linux/arm64,linux/amd64), or give the tier an x86 instance type`,
  );
  expect(commandLines(result, 'docker').some((line) => line.startsWith('docker run'))).toBe(false);
});
