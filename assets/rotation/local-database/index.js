// Secrets Manager rotation function for the password of the app role in the PostgreSQL that runs
// on the stage-1 SingleServer (its `LocalDatabaseSecret`: {"username": "app", "password": ...}).
//
// No Lambda can reach that database: it listens on 127.0.0.1, on a server in a public subnet whose
// security group admits only CloudFront, in a VPC without NAT or endpoints at stage 1. So this
// function runs outside the VPC and changes the password through SSM Run Command on the server
// (the SSM agent runs there for Session Manager): setSecret and testSecret each send a shell script
// of this folder (set-password.sh, test-password.sh) to that one instance with the AWS-owned
// document AWS-RunShellScript, then wait for its result. The scripts read the AWSPENDING version
// from Secrets Manager themselves with the instance role, so the password is in neither the
// command's parameters (SendCommand's Parameters are stored with the command: the API's Command
// type returns them, "The parameter values to be inserted in the document when running the
// command", https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_Command.html) nor
// its output, nor in this function's logs.
//
// The structure follows AWS's generic rotation template (SecretsManagerRotationTemplate/
// lambda_function.py in aws-samples/aws-secrets-manager-rotation-lambdas), which "Lambda rotation
// functions" names as the starting point, with the same stage checks and idempotent steps:
// https://docs.aws.amazon.com/secretsmanager/latest/userguide/rotate-secrets_lambda-functions.html
//   "Use the generic rotation template as a starting point."
//   "Be cautious with debugging or logging statements. They can write information to Amazon
//    CloudWatch Logs. Ensure logs don't contain sensitive information."
// A step that throws is not lost: "If any rotation step fails, Secrets Manager retries the entire
// rotation process multiple times."
// (https://docs.aws.amazon.com/secretsmanager/latest/userguide/rotate-secrets_lambda.html)
//
// Runs on Node.js 24 with the runtime's own AWS SDK v3 (not bundled). The steps take their clients
// as arguments so that tests can pass fakes.
'use strict';
const steps = require('../steps');

/** What the secret's generator makes (SingleServer): 32 letters and digits, no punctuation. */
const PASSWORD_LENGTH = 32;
/** The AWS-owned Run Command document that runs shell commands on Linux. */
const DOCUMENT = 'AWS-RunShellScript';
/**
 * SendCommand's TimeoutSeconds: "If this time is reached and the command hasn't already started
 * running, it won't run." (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_SendCommand.html).
 * A stopped server fails the step instead of running the script much later.
 */
const DELIVERY_TIMEOUT_SECONDS = 60;
/** The document's executionTimeout: how long the script may run once started. */
const EXECUTION_TIMEOUT_SECONDS = 120;
/** How often the function asks for the command's result. */
const POLL_MILLIS = 2_000;
/** Time kept back from the Lambda timeout to fail with a clear error instead of a timeout. */
const MARGIN_MILLIS = 15_000;
/**
 * Final statuses of a command invocation (GetCommandInvocation's Status: Pending, InProgress,
 * Delayed, Success, Cancelled, TimedOut, Failed, Cancelling). `Delayed` is not final: "The system
 * will try to send the command again." (StatusDetails, API_GetCommandInvocation.html)
 */
const FINAL_STATUSES = new Set(['Success', 'Cancelled', 'TimedOut', 'Failed']);
/** The scripts of this folder that setSecret and testSecret run on the server. */
const SCRIPT_FILES = { setSecret: 'set-password.sh', testSecret: 'test-password.sh' };

/** The Lambda entry point. Secrets Manager calls it once per step. */
async function handler(event, context) {
  const [{ SecretsManager }, { SSM }] = await Promise.all([
    import('@aws-sdk/client-secrets-manager'),
    import('@aws-sdk/client-ssm'),
  ]);
  return rotate(
    {
      secrets: new SecretsManager({}),
      ssm: new SSM({}),
      instanceId: process.env.INSTANCE_ID,
      databaseName: process.env.DATABASE_NAME,
      region: process.env.AWS_REGION,
      scripts: readScripts(),
      deadline: Date.now() + context.getRemainingTimeInMillis() - MARGIN_MILLIS,
    },
    event,
  );
}

/**
 * The two scripts, read from this function's own package (the folder of this file). Node's
 * `process.getBuiltinModule` (Node.js 20.16 and 22.3 on) loads `fs` and `path` without `require`.
 */
function readScripts() {
  const fs = process.getBuiltinModule('node:fs');
  const path = process.getBuiltinModule('node:path');
  const read = (file) => fs.readFileSync(path.join(__dirname, file), 'utf8');
  return { setSecret: read(SCRIPT_FILES.setSecret), testSecret: read(SCRIPT_FILES.testSecret) };
}

/**
 * createSecret: a new password, with the current username, in an AWSPENDING version, unless this
 * version already has one (a retried step changes nothing).
 */
async function createSecret(deps, arn, token) {
  const d = withDefaults(deps);
  const current = await d.secrets.getSecretValue({ SecretId: arn, VersionStage: 'AWSCURRENT' });
  const credentials = parseCredentials(current.SecretString, 'AWSCURRENT');
  if (await steps.hasPendingValue(d, arn, token)) {
    d.log(`createSecret: version ${token} of ${arn} already has a password`);
    return;
  }
  // The same rules as the secret's generator (SingleServer's generateSecretString: 32 characters,
  // ExcludePunctuation).
  const password = await steps.randomPassword(d, PASSWORD_LENGTH);
  await d.secrets.putSecretValue({
    SecretId: arn,
    ClientRequestToken: token,
    SecretString: JSON.stringify({ ...credentials, password }),
    VersionStages: ['AWSPENDING'],
  });
  d.log(`createSecret: put a new password for ${credentials.username} in version ${token} of ${arn}`);
}

/**
 * setSecret: set-password.sh on the server sets the role's password to the AWSPENDING one
 * (ALTER ROLE through `sudo -u postgres psql`). Setting the same password again is harmless, so a
 * retry simply runs it again.
 */
async function setSecret(deps, arn, token) {
  await runOnServer(withDefaults(deps), 'setSecret', arn, token);
}

/** testSecret: test-password.sh on the server logs in over TCP with the AWSPENDING password. */
async function testSecret(deps, arn, token) {
  await runOnServer(withDefaults(deps), 'testSecret', arn, token);
}

/**
 * Sends one of the scripts to the server and waits for its end; throws unless it succeeded. The
 * script gets only names and ids (region, secret ARN, version id, database name), never a password.
 */
async function runOnServer(d, step, arn, token) {
  if (!d.instanceId) throw new Error(`${step}: INSTANCE_ID is not set`);
  const command = shellCommand(
    d.scripts[step],
    { AWS_REGION: d.region, DB_SECRET_ARN: arn, SECRET_VERSION_ID: token, DB_NAME: d.databaseName },
    SCRIPT_FILES[step],
  );
  const sent = await d.ssm.sendCommand({
    DocumentName: DOCUMENT,
    InstanceIds: [d.instanceId],
    Comment: `${step} of the local database password rotation`,
    Parameters: { commands: [command], executionTimeout: [String(EXECUTION_TIMEOUT_SECONDS)] },
    TimeoutSeconds: DELIVERY_TIMEOUT_SECONDS,
  });
  const commandId = sent.Command.CommandId;
  d.log(`${step}: sent ${SCRIPT_FILES[step]} to ${d.instanceId} as command ${commandId}`);
  const invocation = await waitForInvocation(d, step, commandId);
  if (invocation.Status !== 'Success') {
    // The scripts never print the password, so their error output may go into the message.
    const stderr = String(invocation.StandardErrorContent || '')
      .trim()
      .slice(-500);
    throw new Error(
      `${step}: command ${commandId} on ${d.instanceId} ended ${invocation.Status} (${invocation.StatusDetails}, exit code ${invocation.ResponseCode})${stderr ? `: ${stderr}` : ''}`,
    );
  }
  d.log(`${step}: command ${commandId} succeeded on ${d.instanceId}`);
}

/**
 * Asks for the invocation until it is final, or fails before the Lambda times out (Secrets Manager
 * then retries the rotation). GetCommandInvocation: "The Run Command API follows an eventual
 * consistency model ... the result of an API command you run that affects your resources might not
 * be immediately visible to all subsequent commands you run." (API_GetCommandInvocation.html), so
 * InvocationDoesNotExist right after SendCommand means "not yet".
 */
async function waitForInvocation(d, step, commandId) {
  for (;;) {
    let invocation;
    try {
      invocation = await d.ssm.getCommandInvocation({ CommandId: commandId, InstanceId: d.instanceId });
    } catch (error) {
      if (error.name !== 'InvocationDoesNotExist') throw error;
    }
    if (invocation && FINAL_STATUSES.has(invocation.Status)) return invocation;
    if (d.now() + d.pollMillis > d.deadline) {
      throw new Error(
        `${step}: command ${commandId} on ${d.instanceId} has not ended yet (status ${invocation ? invocation.Status : 'not visible'}); Secrets Manager retries the rotation`,
      );
    }
    await d.sleep(d.pollMillis);
  }
}

/**
 * One shell command line: the variables, then bash running the script, whatever shell the SSM
 * agent hands the line to. Every value is single-quoted, so nothing in it is expanded. --norc and
 * --noprofile: no startup file of root's changes what the script runs (bash reads ~/.bashrc even
 * without a terminal when it thinks a remote shell daemon started it).
 */
function shellCommand(script, variables, name) {
  const assignments = Object.entries(variables).map(([key, value]) => {
    if (value === undefined || value === null || value === '') {
      throw new Error(`${name}: ${key} is not set`);
    }
    return `${key}=${shellQuote(String(value))}`;
  });
  return `${assignments.join(' ')} bash --norc --noprofile -c ${shellQuote(script)} ${shellQuote(name)}`;
}

/** `value` in single quotes, with each single quote written as '\''. */
function shellQuote(value) {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** The secret's JSON; throws without showing the value when it is not {"username", "password"}. */
function parseCredentials(secretString, stage) {
  let value;
  try {
    value = JSON.parse(secretString);
  } catch {
    throw new Error(`the ${stage} version of the secret is not JSON`);
  }
  if (!value || typeof value.username !== 'string' || !value.username) {
    throw new Error(`the ${stage} version of the secret has no username`);
  }
  return value;
}

// Function declarations are hoisted: the steps exist when this line runs.
const { withDefaults, rotate, finishSecret } = steps.rotationSteps(
  { createSecret, setSecret, testSecret },
  POLL_MILLIS,
);

module.exports = {
  handler,
  rotate,
  createSecret,
  setSecret,
  testSecret,
  finishSecret,
  readScripts,
  shellCommand,
  DOCUMENT,
  PASSWORD_LENGTH,
  DELIVERY_TIMEOUT_SECONDS,
  EXECUTION_TIMEOUT_SECONDS,
};
