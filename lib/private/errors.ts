import { Token } from 'aws-cdk-lib';
import { IConstruct } from 'constructs';

/**
 * An error in what the user gave us (a prop or a context value). The CLI entry point prints
 * its message alone, on one line, without a stack trace.
 */
export class ScaleStagesError extends Error {
  constructor(message: string, scope?: IConstruct) {
    super(scope ? `${scope.node.path}: ${message}` : message);
    this.name = 'ScaleStagesError';
  }
}

/** Throws unless `value` (when given and resolved) is a whole number in `[min, max]`. */
export function checkWholeNumber(
  scope: IConstruct,
  prop: string,
  value: number | undefined,
  min: number,
  max: number,
  why = '',
): void {
  if (value === undefined || Token.isUnresolved(value)) return;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ScaleStagesError(
      `${prop} must be a whole number from ${min} to ${max}${why ? ` (${why})` : ''}; got ${value}.`,
      scope,
    );
  }
}
