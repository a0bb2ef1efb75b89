import { createRequire } from 'module';
import * as path from 'path';
import { FakeSecretsManager } from './fake-secrets-manager';

/**
 * The cache AUTH token rotation function (assets/rotation/cache-auth-token/index.js), run with fake
 * Secrets Manager and ElastiCache clients that keep state as the services do: secret versions with
 * staging labels, and a replication group whose status and accepted tokens change.
 */

type Deps = Record<string, unknown>;
type Step = (deps: Deps, arn: string, token: string) => Promise<void>;
interface RotationModule {
  handler(event: object, context: object): Promise<void>;
  rotate(deps: Deps, event: { SecretId: string; ClientRequestToken: string; Step: string }): Promise<void>;
  createSecret: Step;
  setSecret: Step;
  testSecret: Step;
  finishSecret: Step;
  ROTATED_LABEL: string;
  TOKEN_LENGTH: number;
}

const load = createRequire(__filename);
const rotation = load(
  path.join(__dirname, '..', '..', 'assets', 'rotation', 'cache-auth-token', 'index.js'),
) as RotationModule;

const ARN = 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:CacheAuthToken-AbCdEf';
const GROUP = 'sc1a2b3c4d5e6f';
const CURRENT = 'v-current';
const TOKEN = 'v-new';
const OLD_TOKEN = 'Old0token0value0Old0token0value0Old0token0value0Old0token0value0';
const NEW_TOKEN = 'New1token1value1New1token1value1New1token1value1New1token1value1';

/**
 * A replication group as ElastiCache documents it: ROTATE adds a token and keeps the previous one,
 * dropping the oldest when two are valid; a modification is pending (status `modifying`,
 * AuthTokenStatus ROTATING) for `modifyingPolls` describes.
 */
class FakeElastiCache {
  tokens = [OLD_TOKEN];
  statuses: string[] = [];
  modifyingPolls = 2;
  pendingPolls = 0;
  /** Whether the status reads `available` while the token change is still pending. */
  availableWhilePending = false;
  readonly modifications: Record<string, unknown>[] = [];

  async describeReplicationGroups(input: { ReplicationGroupId: string }) {
    if (input.ReplicationGroupId !== GROUP) throw new Error('ReplicationGroupNotFoundFault');
    const busy = this.pendingPolls > 0;
    if (busy) this.pendingPolls--;
    const status = this.statuses.shift() ?? (busy && !this.availableWhilePending ? 'modifying' : 'available');
    return {
      ReplicationGroups: [
        {
          ReplicationGroupId: GROUP,
          Status: status,
          PendingModifiedValues: busy ? { AuthTokenStatus: 'ROTATING' } : {},
        },
      ],
    };
  }

  async modifyReplicationGroup(input: Record<string, unknown>) {
    if (this.pendingPolls > 0 || this.statuses.length > 0)
      throw new Error('InvalidReplicationGroupStateFault');
    this.modifications.push(input);
    if (input.AuthTokenUpdateStrategy === 'ROTATE') {
      this.tokens = [...this.tokens, input.AuthToken as string].slice(-2);
    }
    this.pendingPolls = this.modifyingPolls;
    return { ReplicationGroup: { Status: 'modifying' } };
  }
}

function setup() {
  const secrets = new FakeSecretsManager({
    current: { versionId: CURRENT, value: OLD_TOKEN },
    pendingVersionId: TOKEN,
    randomPassword: NEW_TOKEN,
  });
  const elasticache = new FakeElastiCache();
  const logs: string[] = [];
  let clock = 0;
  const deps = {
    secrets,
    elasticache,
    replicationGroupId: GROUP,
    now: () => clock,
    sleep: async (ms: number) => {
      clock += ms;
    },
    pollMillis: 15_000,
    deadline: 600_000,
    log: (message: string) => logs.push(message),
  };
  // Each call is a new Lambda invocation, with 10 minutes left.
  const invoke = (token: string, step: string) => {
    deps.deadline = clock + 600_000;
    return rotation.rotate(deps, { SecretId: ARN, ClientRequestToken: token, Step: step });
  };
  const run = (step: string) => invoke(TOKEN, step);
  return { secrets, elasticache, logs, invoke, run, elapsed: () => clock };
}

describe('cache AUTH token rotation, step by step', () => {
  test('createSecret puts a new token as AWSPENDING, generated with a length and characters ElastiCache accepts', async () => {
    const { secrets, run } = setup();
    await run('createSecret');
    expect(secrets.randomPasswordRequests).toEqual([
      { PasswordLength: 64, ExcludePunctuation: true, IncludeSpace: false, RequireEachIncludedType: true },
    ]);
    expect(secrets.values.get(TOKEN)).toBe(NEW_TOKEN);
    expect(secrets.stages.get(TOKEN)).toEqual(['AWSPENDING']);
    expect(secrets.stages.get(CURRENT)).toEqual(['AWSCURRENT']);
  });

  test('the generated length matches the secret CachedTier creates', () => {
    expect(rotation.TOKEN_LENGTH).toBe(64);
  });

  test("exports `handler`, the function's entry point (index.handler)", () => {
    expect(rotation.handler).toBeInstanceOf(Function);
  });

  test('setSecret waits for the group to be available, then ROTATEs in the pending token, applied immediately', async () => {
    const { secrets, elasticache, run, elapsed } = setup();
    await run('createSecret');
    elasticache.statuses = ['snapshotting', 'modifying'];
    await run('setSecret');
    expect(elapsed()).toBe(30_000);
    expect(elasticache.modifications).toEqual([
      {
        ReplicationGroupId: GROUP,
        AuthToken: NEW_TOKEN,
        AuthTokenUpdateStrategy: 'ROTATE',
        ApplyImmediately: true,
      },
    ]);
    // Both tokens work: clients that still hold AWSCURRENT are not cut off.
    expect(elasticache.tokens).toEqual([OLD_TOKEN, NEW_TOKEN]);
    expect(secrets.stages.get(TOKEN)).toEqual(['AWSPENDING', rotation.ROTATED_LABEL]);
  });

  test('testSecret waits until the modification is applied and the group is available again', async () => {
    const { elasticache, run, elapsed } = setup();
    await run('createSecret');
    await run('setSecret');
    elasticache.pendingPolls = 3;
    await run('testSecret');
    expect(elapsed()).toBe(45_000);
  });

  test('testSecret also waits while the token change is pending under an `available` status', async () => {
    const { elasticache, run, elapsed } = setup();
    await run('createSecret');
    await run('setSecret');
    elasticache.availableWhilePending = true;
    await run('testSecret');
    expect(elapsed()).toBe(30_000);
  });

  test('finishSecret moves AWSCURRENT to the new version; the old one becomes AWSPREVIOUS', async () => {
    const { secrets, run } = setup();
    for (const step of ['createSecret', 'setSecret', 'testSecret', 'finishSecret']) await run(step);
    expect(secrets.stages.get(TOKEN)).toEqual([rotation.ROTATED_LABEL, 'AWSCURRENT']);
    expect(secrets.stages.get(CURRENT)).toEqual(['AWSPREVIOUS']);
  });

  test('a second rotation drops the oldest token, never the current one, and moves its marker', async () => {
    const { secrets, elasticache, invoke, run } = setup();
    for (const step of ['createSecret', 'setSecret', 'testSecret', 'finishSecret']) await run(step);
    const third = 'Third2token2Third2token2Third2token2Third2token2Third2token2ab';
    secrets.randomPassword = third;
    secrets.stages.set('v-third', ['AWSPENDING']);
    for (const step of ['createSecret', 'setSecret', 'testSecret', 'finishSecret']) {
      await invoke('v-third', step);
    }
    expect(elasticache.tokens).toEqual([NEW_TOKEN, third]);
    expect(secrets.stages.get('v-third')).toEqual([rotation.ROTATED_LABEL, 'AWSCURRENT']);
    expect(secrets.stages.get(TOKEN)).toEqual(['AWSPREVIOUS']);
    expect(elasticache.modifications.map((m) => m.AuthTokenUpdateStrategy)).toEqual(['ROTATE', 'ROTATE']);
  });

  test('also accepts the step names with underscores that "Rotation by Lambda function" shows', async () => {
    const { secrets, run } = setup();
    await run('create_secret');
    expect(secrets.values.get(TOKEN)).toBe(NEW_TOKEN);
  });

  test('logs name versions and the group, never a token', async () => {
    const { logs, elasticache, run } = setup();
    elasticache.statuses = ['modifying'];
    for (const step of ['createSecret', 'setSecret', 'testSecret', 'finishSecret']) await run(step);
    expect(logs.length).toBeGreaterThan(0);
    expect(logs.join('\n')).not.toMatch(new RegExp(`${OLD_TOKEN}|${NEW_TOKEN}`));
  });
});

describe('cache AUTH token rotation, retries', () => {
  test('createSecret again keeps the token it already put', async () => {
    const { secrets, run } = setup();
    await run('createSecret');
    secrets.randomPassword = 'Other3token3Other3token3Other3token3Other3token3Other3token3ab';
    await run('createSecret');
    expect(secrets.values.get(TOKEN)).toBe(NEW_TOKEN);
    expect(secrets.calls.filter((c) => c === 'GetRandomPassword')).toHaveLength(1);
  });

  test('setSecret again does not ROTATE the same token twice (that would drop AWSCURRENT)', async () => {
    const { elasticache, run } = setup();
    await run('createSecret');
    await run('setSecret');
    await run('setSecret');
    expect(elasticache.modifications).toHaveLength(1);
    expect(elasticache.tokens).toEqual([OLD_TOKEN, NEW_TOKEN]);
  });

  test('the whole rotation retried after testSecret timed out: one ROTATE, then it completes', async () => {
    const { secrets, elasticache, run } = setup();
    elasticache.modifyingPolls = 100;
    await run('createSecret');
    await run('setSecret');
    await expect(run('testSecret')).rejects.toThrow(
      /is not available with the new token applied yet \(status modifying\)/,
    );
    elasticache.pendingPolls = 1;
    for (const step of ['createSecret', 'setSecret', 'testSecret', 'finishSecret']) await run(step);
    expect(elasticache.modifications).toHaveLength(1);
    expect(secrets.stages.get(TOKEN)).toContain('AWSCURRENT');
  });

  test('finishSecret again changes nothing', async () => {
    const { secrets, run } = setup();
    for (const step of ['createSecret', 'setSecret', 'testSecret', 'finishSecret']) await run(step);
    const before = JSON.stringify([...secrets.stages]);
    const calls = secrets.calls.length;
    await run('finishSecret');
    expect(JSON.stringify([...secrets.stages])).toBe(before);
    expect(secrets.calls.slice(calls)).toEqual(['DescribeSecret']);
  });

  test('finishSecret removes AWSPENDING when moving AWSCURRENT left it behind', async () => {
    const { secrets, run } = setup();
    for (const step of ['createSecret', 'setSecret', 'testSecret']) await run(step);
    await run('finishSecret');
    expect(secrets.stages.get(TOKEN)).not.toContain('AWSPENDING');
    expect(secrets.calls).toContain('UpdateSecretVersionStage AWSPENDING');
  });
});

describe('cache AUTH token rotation, failures', () => {
  test('a group that stays busy: setSecret gives up before the Lambda timeout and changes nothing', async () => {
    const { elasticache, secrets, run } = setup();
    await run('createSecret');
    elasticache.statuses = Array<string>(100).fill('modifying');
    await expect(run('setSecret')).rejects.toThrow(
      `replication group ${GROUP} is not available yet (status modifying); Secrets Manager retries the rotation`,
    );
    expect(elasticache.modifications).toEqual([]);
    expect(secrets.stages.get(TOKEN)).toEqual(['AWSPENDING']);
  });

  test('testSecret before setSecret fails: the cache does not know the token', async () => {
    const { run } = setup();
    await run('createSecret');
    await expect(run('testSecret')).rejects.toThrow(
      /setSecret has not given the token of version v-new to the cache/,
    );
  });

  test.each([
    ['punctuation ElastiCache refuses', 'abc/def@ghi"jkl%mnopqrstuvwxyz0123456789'],
    ['too short', 'Abc123'],
    ['too long', 'A1'.repeat(65)],
  ])('a generated token with %s is never stored', async (_, password) => {
    const { secrets, run } = setup();
    secrets.randomPassword = password;
    await expect(run('createSecret')).rejects.toThrow(/16 to 128 letters, digits or !&#\$\^<>- characters/);
    expect(secrets.calls).not.toContain('PutSecretValue');
  });

  test('ElastiCache’s allowed specials pass', async () => {
    const { secrets, run } = setup();
    secrets.randomPassword = 'Abc123!&#$^<>-Abc123!&#$^<>-';
    await run('createSecret');
    expect(secrets.values.get(TOKEN)).toBe('Abc123!&#$^<>-Abc123!&#$^<>-');
  });

  test('a pending value that is not a valid token never reaches ElastiCache', async () => {
    const { secrets, elasticache, run } = setup();
    secrets.values.set(TOKEN, '{"password":"x"}');
    await expect(run('setSecret')).rejects.toThrow(/16 to 128/);
    expect(elasticache.modifications).toEqual([]);
  });

  test('the version must be staged for rotation, as the template checks', async () => {
    const { secrets, run } = setup();
    secrets.rotationEnabled = false;
    await expect(run('createSecret')).rejects.toThrow(/is not enabled for rotation/);
    secrets.rotationEnabled = true;
    secrets.stages.set(TOKEN, []);
    await expect(run('createSecret')).rejects.toThrow(/has no stage for rotation/);
    secrets.stages.set(TOKEN, ['SOMETHING']);
    await expect(run('createSecret')).rejects.toThrow(/is not AWSPENDING/);
    secrets.stages.set(TOKEN, ['AWSPENDING']);
    await expect(run('rewindSecret')).rejects.toThrow(/Invalid step parameter rewindSecret/);
  });

  test('a version that is already AWSCURRENT: nothing to do', async () => {
    const { secrets, elasticache, run } = setup();
    secrets.stages.set(TOKEN, ['AWSCURRENT']);
    secrets.stages.set(CURRENT, []);
    await run('setSecret');
    expect(elasticache.modifications).toEqual([]);
  });
});
