/**
 * A fake of the SDK v3 Secrets Manager client for the rotation function tests: one secret, kept as
 * Secrets Manager keeps it (values and staging labels per version, each label on one version at a
 * time), with every call logged.
 */

/** An error as the SDK throws it: the service's exception name, and its message. */
export class AwsError extends Error {
  constructor(
    override readonly name: string,
    message: string,
  ) {
    super(message);
  }
}

export interface FakeSecretsManagerOptions {
  /** The version that is AWSCURRENT, and its value. */
  readonly current: { readonly versionId: string; readonly value: string };
  /** The version RotateSecret staged AWSPENDING, without a value yet. */
  readonly pendingVersionId: string;
  /** What GetRandomPassword returns (`randomPassword`, which a test may change). */
  readonly randomPassword: string;
  /** An error GetSecretValue throws when asked for a VersionId (`getSecretValueError`, which a test may set). */
  readonly getSecretValueError?: Error;
}

/** A secret as Secrets Manager keeps it: values and staging labels per version. */
export class FakeSecretsManager {
  readonly values: Map<string, string>;
  readonly stages: Map<string, string[]>;
  /** Each call's operation; UpdateSecretVersionStage with the label it updates. */
  readonly calls: string[] = [];
  readonly randomPasswordRequests: object[] = [];
  rotationEnabled = true;
  randomPassword: string;
  getSecretValueError?: Error;

  constructor(options: FakeSecretsManagerOptions) {
    this.values = new Map([[options.current.versionId, options.current.value]]);
    this.stages = new Map([
      [options.current.versionId, ['AWSCURRENT']],
      [options.pendingVersionId, ['AWSPENDING']],
    ]);
    this.randomPassword = options.randomPassword;
    this.getSecretValueError = options.getSecretValueError;
  }

  /** The staging labels of a version (none for a version the secret does not have). */
  stagesOf(version: string): string[] {
    return this.stages.get(version) ?? [];
  }

  async describeSecret() {
    this.calls.push('DescribeSecret');
    return {
      RotationEnabled: this.rotationEnabled,
      VersionIdsToStages: Object.fromEntries([...this.stages].filter(([, s]) => s.length > 0)),
    };
  }

  async getSecretValue(input: { VersionId?: string; VersionStage?: string }) {
    this.calls.push('GetSecretValue');
    if (this.getSecretValueError && input.VersionId) throw this.getSecretValueError;
    const id = input.VersionId ?? this.holder(input.VersionStage!);
    const value = id === undefined ? undefined : this.values.get(id);
    const staged =
      id !== undefined && (!input.VersionStage || this.stagesOf(id).includes(input.VersionStage));
    if (value === undefined || !staged) {
      throw new AwsError(
        'ResourceNotFoundException',
        "Secrets Manager can't find the specified secret value",
      );
    }
    return { VersionId: id, SecretString: value };
  }

  async getRandomPassword(input: object) {
    this.calls.push('GetRandomPassword');
    this.randomPasswordRequests.push(input);
    return { RandomPassword: this.randomPassword };
  }

  async putSecretValue(input: { ClientRequestToken: string; SecretString: string; VersionStages: string[] }) {
    this.calls.push('PutSecretValue');
    this.values.set(input.ClientRequestToken, input.SecretString);
    for (const stage of input.VersionStages) this.attach(stage, input.ClientRequestToken);
  }

  /**
   * As the service: a label on another version moves only with RemoveFromVersionId naming that
   * version, and AWSPREVIOUS follows the version AWSCURRENT leaves.
   */
  async updateSecretVersionStage(input: {
    VersionStage: string;
    MoveToVersionId?: string;
    RemoveFromVersionId?: string;
  }) {
    this.calls.push(`UpdateSecretVersionStage ${input.VersionStage}`);
    const holder = this.holder(input.VersionStage);
    if (
      input.MoveToVersionId &&
      holder &&
      holder !== input.MoveToVersionId &&
      holder !== input.RemoveFromVersionId
    ) {
      throw new AwsError(
        'InvalidParameterException',
        `${input.VersionStage} is on ${holder}: RemoveFromVersionId is required`,
      );
    }
    if (input.RemoveFromVersionId) {
      if (holder !== input.RemoveFromVersionId) {
        throw new AwsError(
          'InvalidParameterException',
          `${input.VersionStage} is not on ${input.RemoveFromVersionId}`,
        );
      }
      this.detach(input.VersionStage, input.RemoveFromVersionId);
    }
    if (input.MoveToVersionId) this.attach(input.VersionStage, input.MoveToVersionId);
    if (input.VersionStage === 'AWSCURRENT' && input.RemoveFromVersionId) {
      this.attach('AWSPREVIOUS', input.RemoveFromVersionId);
    }
  }

  /** The version that has a label. */
  private holder(stage: string): string | undefined {
    return [...this.stages].find(([, s]) => s.includes(stage))?.[0];
  }

  /** Puts a label on a version, taking it off any other. */
  private attach(stage: string, version: string) {
    for (const [, s] of this.stages) s.splice(0, s.length, ...s.filter((x) => x !== stage));
    this.stages.set(version, [...this.stagesOf(version), stage]);
  }

  private detach(stage: string, version: string) {
    this.stages.set(
      version,
      this.stagesOf(version).filter((x) => x !== stage),
    );
  }
}
