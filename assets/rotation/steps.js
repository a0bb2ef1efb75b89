// What every Secrets Manager rotation function of this library shares: the stage checks and the
// step dispatch of AWS's generic rotation template (SecretsManagerRotationTemplate/lambda_function.py
// in aws-samples/aws-secrets-manager-rotation-lambdas, which "Lambda rotation functions" names as
// the starting point: https://docs.aws.amazon.com/secretsmanager/latest/userguide/rotate-secrets_lambda-functions.html),
// and its finishSecret. Each function supplies createSecret, setSecret and testSecret.
'use strict';

/** The step functions' defaults; tests pass fakes for the clients, the clock and the log. */
function withDefaults(deps, pollMillis) {
  return {
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    now: () => Date.now(),
    pollMillis,
    deadline: 0, // no waiting unless the caller gives a deadline
    log: (message) => console.log(message),
    ...deps,
  };
}

/**
 * Checks that the version is staged for rotation, then runs the step, as the template does.
 * `d.secrets` has the methods of the SDK v3 aggregated Secrets Manager client.
 */
async function rotate(steps, d, event) {
  const arn = event.SecretId;
  const token = event.ClientRequestToken;
  // The template reads `createSecret`; "Rotation by Lambda function" spells the values
  // `create_secret`. Both are accepted.
  const step = String(event.Step).replace(/_([a-z])/g, (_, c) => c.toUpperCase());
  const metadata = await d.secrets.describeSecret({ SecretId: arn });
  if (!metadata.RotationEnabled) throw new Error(`Secret ${arn} is not enabled for rotation`);
  const stages = (metadata.VersionIdsToStages || {})[token];
  if (!stages) throw new Error(`Secret version ${token} has no stage for rotation of secret ${arn}`);
  if (stages.includes('AWSCURRENT')) {
    d.log(`${step}: version ${token} is already AWSCURRENT for ${arn}`);
    return;
  }
  if (!stages.includes('AWSPENDING')) {
    throw new Error(`Secret version ${token} is not AWSPENDING for rotation of secret ${arn}`);
  }
  const all = { ...steps, finishSecret };
  if (!Object.hasOwn(all, step)) throw new Error(`Invalid step parameter ${event.Step}`);
  await all[step](d, arn, token);
}

/** Whether this version already holds a pending value (a retried createSecret changes nothing). */
async function hasPendingValue(d, arn, token) {
  try {
    await d.secrets.getSecretValue({ SecretId: arn, VersionId: token, VersionStage: 'AWSPENDING' });
    return true;
  } catch (error) {
    if (error.name !== 'ResourceNotFoundException') throw error;
    return false;
  }
}

/**
 * A new password of letters and digits, each kind present: GetRandomPassword with
 * ExcludePunctuation, which "Specifies whether to exclude the following punctuation characters from
 * the password: ! " # $ % & ' ( ) * + , - . / : ; < = > ? @ [ \\ ] ^ _ ` { | } ~." (API reference),
 * so it is valid for ElastiCache and PostgreSQL and safe in a shell, a URL or a config file.
 */
async function randomPassword(d, length) {
  const { RandomPassword } = await d.secrets.getRandomPassword({
    PasswordLength: length,
    ExcludePunctuation: true,
    IncludeSpace: false,
    RequireEachIncludedType: true,
  });
  return RandomPassword;
}

async function versionStages(d, arn) {
  return (await d.secrets.describeSecret({ SecretId: arn })).VersionIdsToStages || {};
}

/** finishSecret: moves AWSCURRENT to this version (AWSPREVIOUS follows) and lets AWSPENDING go. */
async function finishSecret(d, arn, token) {
  const stages = await versionStages(d, arn);
  const current = Object.keys(stages).find((v) => stages[v].includes('AWSCURRENT'));
  if (current !== token) {
    await d.secrets.updateSecretVersionStage({
      SecretId: arn,
      VersionStage: 'AWSCURRENT',
      MoveToVersionId: token,
      RemoveFromVersionId: current,
    });
  }
  if (((await versionStages(d, arn))[token] || []).includes('AWSPENDING')) {
    await d.secrets.updateSecretVersionStage({
      SecretId: arn,
      VersionStage: 'AWSPENDING',
      RemoveFromVersionId: token,
    });
  }
  d.log(`finishSecret: version ${token} is AWSCURRENT for ${arn}`);
}

/**
 * The entry points of a rotation function made of its own createSecret, setSecret and testSecret
 * (each taking `(deps, arn, token)`): `rotate(deps, event)`, `finishSecret(deps, arn, token)` and
 * `withDefaults(deps)` with the function's poll interval.
 */
function rotationSteps(ownSteps, pollMillis) {
  const defaults = (deps) => withDefaults(deps, pollMillis);
  return {
    withDefaults: defaults,
    rotate: (deps, event) => rotate(ownSteps, defaults(deps), event),
    finishSecret: (deps, arn, token) => finishSecret(defaults(deps), arn, token),
  };
}

module.exports = { rotationSteps, hasPendingValue, randomPassword, versionStages };
