import { Stack, Validations } from 'aws-cdk-lib/core';
import { IConstruct } from 'constructs';

/** The RDS for PostgreSQL logs exported to CloudWatch Logs by the primary and its replicas. */
export const DATABASE_LOG_EXPORTS = ['postgresql', 'upgrade'];

/**
 * RDS creates the log groups of its exports itself, so their retention is set by aws-cdk-lib's
 * LogRetention handler (one Lambda per stack, which this library does not write); what cdk-nag
 * says of it is aws-cdk-lib's design.
 */
export function acknowledgeLogRetentionHandler(scope: IConstruct): void {
  const handler = Stack.of(scope).node.tryFindChild('LogRetentionaae0aa3c5b4d4f87b02d85b201efdd8a');
  if (!handler) return;
  const reason =
    "aws-cdk-lib's LogRetention handler sets the retention of log groups that RDS creates; PutRetentionPolicy on log groups whose names RDS derives at deploy time, with the AWS-managed basic execution role for its own logs.";
  Validations.of(handler).acknowledge(
    {
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
      reason,
    },
    { id: 'AwsSolutions-IAM5[Resource::*]', reason },
  );
}
