// Secrets Manager rotation function for the AUTH token of an ElastiCache (Valkey or Redis OSS)
// replication group: CachedTier's `AuthToken` secret, whose value is the bare token. AWS offers no
// rotation template for AUTH tokens, so this follows the generic template's structure
// (SecretsManagerRotationTemplate/lambda_function.py in aws-samples/aws-secrets-manager-rotation-lambdas,
// which "Lambda rotation functions" names as the starting point):
// https://docs.aws.amazon.com/secretsmanager/latest/userguide/rotate-secrets_lambda-functions.html
//
// It calls only the Secrets Manager and ElastiCache APIs, so it runs outside the VPC; it never
// reaches the cache nodes (they admit only the app tiers), so testSecret cannot send AUTH itself.
//
// The token changes with ModifyReplicationGroup and the ROTATE strategy, never SET. From
// "Modifying the AUTH token on an existing cluster" (https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/auth.html):
//   "The ROTATE strategy adds an additional AUTH token to the server while retaining the previous
//    token. The SET strategy updates the server to support just a single AUTH token."
//   "If this modification is performed on a server that already supports two AUTH tokens, the
//    oldest AUTH token will also be removed during this operation. This allows a server to support
//    up to two most recent AUTH tokens at a given time."
//   "After the clients are updated, you can use the SET strategy ... to exclusively start using the
//    new token."
// This function cannot know when every client has read the new token, so it never SETs: after a
// rotation the cache accepts AWSCURRENT and AWSPREVIOUS, and the next rotation's ROTATE drops the
// older one. A client that still holds AWSPREVIOUS keeps working for one rotation interval.
//
// Runs on Node.js 24 with the runtime's own AWS SDK v3 (not bundled). The step functions take their
// clients as arguments so that tests can pass fakes.
'use strict';
const steps = require('../steps');

/** Length of a generated token; CachedTier's secret generates the first one the same way. */
const TOKEN_LENGTH = 64;
/**
 * What ElastiCache accepts (auth.html, "Overview of AUTH"): "Tokens, or passwords, must be 16–128
 * printable characters. Nonalphanumeric characters are restricted to (!, &, #, $, ^, <, >, -)."
 */
const VALID_TOKEN = /^[A-Za-z0-9!&#$^<>-]{16,128}$/;
/**
 * A staging label this function moves to a version once ModifyReplicationGroup has accepted its
 * token. A retried setSecret must not ROTATE the same token again: that would drop the oldest
 * token, which is AWSCURRENT, the one clients use until finishSecret.
 */
const ROTATED_LABEL = 'ELASTICACHE_ROTATED';
/** How often a wait asks ElastiCache for the group's state. */
const POLL_MILLIS = 15_000;
/** Time kept back from the Lambda timeout to fail with a clear error instead of a timeout. */
const MARGIN_MILLIS = 30_000;

/** The Lambda entry point. Secrets Manager calls it once per step. */
async function handler(event, context) {
  const [{ SecretsManager }, { ElastiCache }] = await Promise.all([
    import('@aws-sdk/client-secrets-manager'),
    import('@aws-sdk/client-elasticache'),
  ]);
  return rotate(
    {
      secrets: new SecretsManager({}),
      elasticache: new ElastiCache({}),
      replicationGroupId: process.env.REPLICATION_GROUP_ID,
      deadline: Date.now() + context.getRemainingTimeInMillis() - MARGIN_MILLIS,
    },
    event,
  );
}

/** createSecret: a new token in an AWSPENDING version, unless this version already has one. */
async function createSecret(deps, arn, token) {
  const d = withDefaults(deps);
  await d.secrets.getSecretValue({ SecretId: arn, VersionStage: 'AWSCURRENT' });
  if (await steps.hasPendingValue(d, arn, token)) {
    d.log(`createSecret: version ${token} of ${arn} already has a token`);
    return;
  }
  const newToken = await steps.randomPassword(d, TOKEN_LENGTH);
  checkToken(newToken);
  await d.secrets.putSecretValue({
    SecretId: arn,
    ClientRequestToken: token,
    SecretString: newToken,
    VersionStages: ['AWSPENDING'],
  });
  d.log(`createSecret: put a new token in version ${token} of ${arn}`);
}

/**
 * setSecret: once the group is `available`, adds the pending token to it with ROTATE (the current
 * one stays valid), applied immediately, then marks the version so that a retry does not ROTATE it
 * again.
 */
async function setSecret(deps, arn, token) {
  const d = withDefaults(deps);
  const stages = await versionStages(d, arn);
  if ((stages[token] || []).includes(ROTATED_LABEL)) {
    d.log(`setSecret: the cache already has the token of version ${token}`);
    return;
  }
  const pending = await d.secrets.getSecretValue({
    SecretId: arn,
    VersionId: token,
    VersionStage: 'AWSPENDING',
  });
  checkToken(pending.SecretString);
  // ModifyReplicationGroup refuses a group that is busy (InvalidReplicationGroupState).
  await waitForGroup(d, 'available', (group) => group.Status === 'available');
  await d.elasticache.modifyReplicationGroup({
    ReplicationGroupId: d.replicationGroupId,
    AuthToken: pending.SecretString,
    AuthTokenUpdateStrategy: 'ROTATE',
    ApplyImmediately: true,
  });
  const holder = Object.keys(stages).find((v) => stages[v].includes(ROTATED_LABEL));
  await d.secrets.updateSecretVersionStage({
    SecretId: arn,
    VersionStage: ROTATED_LABEL,
    MoveToVersionId: token,
    ...(holder ? { RemoveFromVersionId: holder } : {}),
  });
  d.log(`setSecret: ElastiCache is adding the token of version ${token} (ROTATE)`);
}

/**
 * testSecret: the token cannot be tried from here (the function is outside the VPC and the cache
 * admits only the app tiers), so this checks what ElastiCache reports: setSecret's modification
 * was accepted, and the group is `available` with no AUTH token change pending (the API's
 * PendingModifiedValues.AuthTokenStatus is SETTING or ROTATING while one is).
 */
async function testSecret(deps, arn, token) {
  const d = withDefaults(deps);
  const stages = await versionStages(d, arn);
  if (!(stages[token] || []).includes(ROTATED_LABEL)) {
    throw new Error(`testSecret: setSecret has not given the token of version ${token} to the cache`);
  }
  await waitForGroup(
    d,
    'available with the new token applied',
    (group) => group.Status === 'available' && !(group.PendingModifiedValues || {}).AuthTokenStatus,
  );
  d.log(`testSecret: the cache accepts the token of version ${token}`);
}

/** Throws unless `value` is a token ElastiCache accepts; never shows the value. */
function checkToken(value) {
  if (typeof value !== 'string' || !VALID_TOKEN.test(value)) {
    throw new Error(
      'the token is not 16 to 128 letters, digits or !&#$^<>- characters, which ElastiCache requires',
    );
  }
}

/** Asks ElastiCache for the group until `ready(group)`, or fails before the Lambda times out. */
async function waitForGroup(d, what, ready) {
  for (;;) {
    const { ReplicationGroups: groups = [] } = await d.elasticache.describeReplicationGroups({
      ReplicationGroupId: d.replicationGroupId,
    });
    const group = groups[0];
    if (!group) throw new Error(`replication group ${d.replicationGroupId} not found`);
    if (ready(group)) return group;
    if (d.now() + d.pollMillis > d.deadline) {
      throw new Error(
        `replication group ${d.replicationGroupId} is not ${what} yet (status ${group.Status}); Secrets Manager retries the rotation`,
      );
    }
    d.log(`waiting for replication group ${d.replicationGroupId} (status ${group.Status})`);
    await d.sleep(d.pollMillis);
  }
}

// Function declarations are hoisted: the steps exist when this line runs.
const { withDefaults, rotate, finishSecret } = steps.rotationSteps(
  { createSecret, setSecret, testSecret },
  POLL_MILLIS,
);
const versionStages = steps.versionStages;

module.exports = {
  handler,
  rotate,
  createSecret,
  setSecret,
  testSecret,
  finishSecret,
  ROTATED_LABEL,
  TOKEN_LENGTH,
};
