import { Duration } from 'aws-cdk-lib/core';
import * as rds from 'aws-cdk-lib/aws-rds';
import { IConstruct, Construct } from 'constructs';
import { checkWholeNumber, ScaleStagesError } from './errors';

/** The name of the app's database, as PostgreSQL takes it; returns it. */
export function checkDatabaseName(scope: IConstruct, name: string): string {
  if (!/^[A-Za-z][A-Za-z0-9_]{0,62}$/.test(name)) {
    throw new ScaleStagesError(
      `databaseName must start with a letter and hold only letters, digits and underscores (63 at most); got '${name}'.`,
      scope,
    );
  }
  return name;
}

/** `log_min_duration_statement`: the slow-statement threshold in whole milliseconds, checked. */
export function slowStatementMillis(scope: IConstruct, threshold: Duration): number {
  const millis = threshold.toMilliseconds({ integral: false });
  checkWholeNumber(scope, 'slowStatementThreshold (ms)', millis, 0, 2147483647);
  return millis;
}

/**
 * The parameter group (construct id `Parameters`) of this library's PostgreSQL databases: TLS
 * required for every connection, statements of `slowMillis` or longer logged. The description is
 * create-only: a new one replaces the group, and the database then changes groups.
 */
export function postgresParameters(
  scope: Construct,
  version: rds.PostgresEngineVersion,
  description: string,
  slowMillis: number,
): rds.ParameterGroup {
  return new rds.ParameterGroup(scope, 'Parameters', {
    engine: rds.DatabaseInstanceEngine.postgres({ version }),
    description,
    parameters: {
      'rds.force_ssl': '1',
      log_min_duration_statement: String(slowMillis),
    },
  });
}
