import { IConstruct } from 'constructs';
import { acknowledgeAwsCdkHandler, BASIC_EXECUTION_ROLE } from './aws-cdk-handlers';

/** The RDS for PostgreSQL logs exported to CloudWatch Logs by the primary and its replicas. */
export const DATABASE_LOG_EXPORTS = ['postgresql', 'upgrade'];

/**
 * RDS creates the log groups of its exports itself, so their retention is set by aws-cdk-lib's
 * LogRetention handler (one Lambda per stack, which this library does not write); what cdk-nag
 * says of it is aws-cdk-lib's design.
 */
export function acknowledgeLogRetentionHandler(scope: IConstruct): void {
  acknowledgeAwsCdkHandler(
    scope,
    'LogRetentionaae0aa3c5b4d4f87b02d85b201efdd8a',
    "aws-cdk-lib's LogRetention handler sets the retention of log groups that RDS creates; PutRetentionPolicy on log groups whose names RDS derives at deploy time, with the AWS-managed basic execution role for its own logs.",
    [BASIC_EXECUTION_ROLE, 'IAM5[Resource::*]'],
  );
}
