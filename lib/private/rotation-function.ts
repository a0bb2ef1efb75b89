import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib/core';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { assetPath } from './assets';
import { BASIC_EXECUTION_ROLE } from './aws-cdk-handlers';

/** What a rotation function needs: its code and what it is told. */
export interface RotationFunctionProps {
  /** One line on what the function rotates. */
  readonly description: string;
  /**
   * The handler, relative to `assets/rotation/` (`<folder>/index.handler`). The functions share one
   * asset, so each can require `../steps.js`, the step dispatch they have in common.
   */
  readonly handler: string;
  /** Environment variables for the handler. */
  readonly environment: { [name: string]: string };
  /** How long one step may run. */
  readonly timeout: Duration;
}

/**
 * A Secrets Manager rotation function written by this library, for secrets AWS has no rotation
 * template for: Node.js 24 with the runtime's own AWS SDK v3 (no bundling), Graviton, its own log
 * group with a retention period. Secrets Manager calls it once per step (createSecret, setSecret,
 * testSecret, finishSecret); `Secret.addRotationSchedule` grants it the secret.
 */
export function rotationFunction(
  scope: Construct,
  id: string,
  props: RotationFunctionProps,
): lambda.Function {
  const logGroup = new logs.LogGroup(scope, `${id}Logs`, {
    retention: logs.RetentionDays.THREE_MONTHS,
    removalPolicy: RemovalPolicy.RETAIN,
  });
  const fn = new lambda.Function(scope, id, {
    description: props.description,
    runtime: lambda.Runtime.NODEJS_24_X,
    architecture: lambda.Architecture.ARM_64,
    handler: props.handler,
    code: lambda.Code.fromAsset(assetPath('rotation')),
    timeout: props.timeout,
    memorySize: 256,
    environment: props.environment,
    logGroup,
  });
  Validations.of(fn).acknowledge({
    id: `AwsSolutions-${BASIC_EXECUTION_ROLE}`,
    reason:
      'The AWS-managed basic execution role lets the rotation function write its own logs, nothing more.',
  });
  return fn;
}
