import { Lazy, Token } from 'aws-cdk-lib/core';
import { IConstruct } from 'constructs';
import { ScaleStagesError } from './errors';

/** The file that holds the app's environment variables on every server (`AppSource.ENVIRONMENT_FILE`). */
export const ENV_FILE = '/etc/scale-stages/app.env';

/**
 * The environment variables an app tier hands to its servers, rendered lazily into the user data
 * so that constructs added later (a database, a cache) can still add theirs.
 */
export class AppEnvironment {
  private readonly variables = new Map<string, string>();

  constructor(private readonly scope: IConstruct) {}

  /** Adds one variable; a name set twice is a wiring mistake and fails. */
  public add(name: string, value: string): void {
    if (!/^[A-Z_][A-Z0-9_]*$/.test(name)) {
      throw new ScaleStagesError(
        `environment variable name must be upper case letters, digits and underscores (such as DATABASE_HOST); got '${name}'.`,
        this.scope,
      );
    }
    if (!Token.isUnresolved(value) && /[\s'"\\$`]/.test(value)) {
      throw new ScaleStagesError(
        `environment variable ${name} must not contain spaces, quotes, backslashes, '$' or backticks; got '${value}'.`,
        this.scope,
      );
    }
    if (this.variables.has(name)) {
      throw new ScaleStagesError(
        `environment variable ${name} is already set to '${this.variables.get(name)}'; each variable can be set once.`,
        this.scope,
      );
    }
    this.variables.set(name, value);
  }

  public addAll(variables: Record<string, string>): void {
    for (const [name, value] of Object.entries(variables)) this.add(name, value);
  }

  /** Shell commands that write the environment file (root-only) at boot. */
  public writeCommands(): string[] {
    const file = ENV_FILE;
    const body = Lazy.string({
      produce: () =>
        [...this.variables.entries()]
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([name, value]) => `${name}=${value}`)
          .join('\n'),
    });
    return [
      `install -d -m 755 ${file.substring(0, file.lastIndexOf('/'))}`,
      `(umask 077; cat > ${file} <<'ENV'\n${body}\nENV\n)`,
    ];
  }
}
