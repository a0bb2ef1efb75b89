import { Duration, Size, SizeRoundingBehavior, Token } from 'aws-cdk-lib/core';
import { IConstruct } from 'constructs';

const SCALE_STAGES_ERROR = Symbol.for('cdk-scale-stages.ScaleStagesError');

/**
 * An error in what the user gave us (a prop or a context value). The CLI entry point prints
 * its message alone, on one line, without a stack trace.
 *
 * TypeScript and JavaScript apps can catch it with `instanceof`; `ScaleStagesErrors.isScaleStagesError`
 * works in every jsii language, also across two copies of this package.
 *
 * @jsii ignore jsii cannot model a subclass of Error.
 */
export class ScaleStagesError extends Error {
  constructor(message: string, scope?: IConstruct) {
    super(scope ? `${scope.node.path}: ${message}` : message);
    this.name = 'ScaleStagesError';
    Object.defineProperty(this, SCALE_STAGES_ERROR, { value: true });
  }
}

/** Tells this library's errors about bad input apart from any other error. */
export class ScaleStagesErrors {
  /**
   * Whether `x` is a `ScaleStagesError`: bad input (a prop or a context value) that this library
   * refused at synth time, with a message that names it.
   */
  public static isScaleStagesError(x: unknown): boolean {
    return typeof x === 'object' && x !== null && SCALE_STAGES_ERROR in x;
  }

  private constructor() {}
}

/** Throws unless `value` (when given and resolved) is a whole number in `[min, max]`. */
export function checkWholeNumber(
  scope: IConstruct | undefined,
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

/** A size in GiB, checked to be whole and in `[min, max]`. */
export function checkGibibytes(
  scope: IConstruct,
  prop: string,
  size: Size,
  min: number,
  max: number,
  why = '',
): number {
  const gib = size.toGibibytes({ rounding: SizeRoundingBehavior.NONE });
  checkWholeNumber(scope, `${prop} (GiB)`, gib, min, max, why);
  return gib;
}

/** A duration in days, checked to be whole and in `[min, max]`. */
export function checkDays(
  scope: IConstruct,
  prop: string,
  duration: Duration,
  min: number,
  max: number,
): number {
  const days = duration.toDays({ integral: false });
  checkWholeNumber(scope, `${prop} (days)`, days, min, max);
  return days;
}

/** Throws unless `duration` (when resolved) is from `min` to `max`, whole seconds. */
export function checkDuration(
  scope: IConstruct,
  prop: string,
  duration: Duration,
  min: Duration,
  max: Duration,
  why = '',
): number {
  const seconds = duration.toSeconds({ integral: false });
  if (Token.isUnresolved(seconds)) return seconds;
  if (!Number.isInteger(seconds) || seconds < min.toSeconds() || seconds > max.toSeconds()) {
    throw new ScaleStagesError(
      `${prop} must be whole seconds from ${min.toHumanString()} to ${max.toHumanString()}${why ? ` (${why})` : ''}; got ${duration.toHumanString()}.`,
      scope,
    );
  }
  return seconds;
}
