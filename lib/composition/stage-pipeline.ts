import { Stack, StackProps, Stage, Token, Validations } from 'aws-cdk-lib/core';
import * as pipelines from 'aws-cdk-lib/pipelines';
import { Construct } from 'constructs';
import { contentBucket, logBucket } from '../private/buckets';
import { ScaleStagesError } from '../private/errors';
import { acknowledgeNist80053R5 } from '../private/nist-800-53-r5';
import { StageStacks } from './stage-stacks';
import { StageStacksProps } from './stage-stacks-props';

/** Properties of a `StagePipeline`. */
export interface StagePipelineProps extends StackProps {
  /** Your repository, as `owner/name`, on a host that an AWS CodeConnections connection reaches. */
  readonly repository: string;
  /**
   * The ARN of the AWS CodeConnections connection to the repository's host (GitHub, GitLab,
   * Bitbucket); create it once in the console, which asks you to authorize it.
   */
  readonly connectionArn: string;
  /**
   * The branch whose every push the pipeline deploys.
   *
   * @default 'main'
   */
  readonly branch?: string;
  /** The stage's stacks, as `StageStacks` takes them (the stage, your app, sizes). */
  readonly deploy: StageStacksProps;
  /**
   * The construct id of the stage's stacks in the pipeline's deploy stage; their stack names are
   * `<pipeline id>-<appName>` (and `-Edge`, `-<region>`).
   *
   * @default 'ScaleStages'
   */
  readonly appName?: string;
  /**
   * Whether a person approves each release in the pipeline before it deploys.
   *
   * @default false
   */
  readonly manualApproval?: boolean;
  /**
   * The commands that build your CDK app and synthesize it into `cdk.out`.
   *
   * @default ['npm ci', 'npx cdk synth']
   */
  readonly synthCommands?: string[];
}

/**
 * A pipeline (CDK Pipelines, on AWS CodePipeline) that deploys a stage's stacks on every push to your
 * repository: it synthesizes the app, updates itself, then deploys the stacks in the order their
 * dependencies give (the edge stack and, at stage 10m, the secondary regions before the primary), after a
 * manual approval when asked. Each deploy is a release as `cdk deploy` makes one (docs/releases.md), and
 * the stage guard refuses a stage change it would refuse from the CLI. Its stack needs an explicit
 * account and region: the pipeline deploys to us-east-1 (the edge stack) and the secondary regions too.
 *
 * The pipeline deploys stacks of its own. It cannot take over stacks the CLI deployed: inside its stage,
 * names that CDK derives from construct paths differ (the server's launch template, the database secret,
 * security group rules), and deploying over a CLI stack would replace those, the stage-1 server with them.
 */
export class StagePipeline extends Stack {
  /** The pipeline, to add steps or stages to. */
  public readonly pipeline: pipelines.CodePipeline;
  /** The stage's stacks that the pipeline deploys. */
  public readonly stacks: StageStacks;

  constructor(scope: Construct, id: string, props: StagePipelineProps) {
    const { account, region } = props.env ?? {};
    if (!account || !region || Token.isUnresolved(account) || Token.isUnresolved(region)) {
      throw new ScaleStagesError(
        `StagePipeline env must name an account and a region, such as { account: '111111111111', region: 'eu-west-1' }: the pipeline deploys across regions (us-east-1 for the edge stack), which CodePipeline does only from a stack with an explicit account; got ${JSON.stringify(props.env ?? {})}.`,
      );
    }
    checkSource(props);
    super(scope, id, props);
    const source = pipelines.CodePipelineSource.connection(props.repository, props.branch ?? 'main', {
      connectionArn: props.connectionArn,
    });
    this.pipeline = new pipelines.CodePipeline(this, 'Pipeline', {
      synth: new pipelines.ShellStep('Synth', {
        input: source,
        commands: props.synthCommands ?? ['npm ci', 'npx cdk synth'],
      }),
      // Versioned, encrypted, TLS only, with access logs, as the stages' buckets are.
      artifactBucket: contentBucket(this, 'Artifacts', {
        logs: logBucket(this, 90),
        logPrefix: 'artifacts/',
        noncurrentVersionDays: 30,
      }),
    });
    // No environment of its own: the stage's primary stays environment-agnostic, as the CLI deploys it
    // (an explicit region would name zones literally, and look them up with credentials at synth).
    // CDK Pipelines deploys it to the pipeline's account and region.
    const deployment = new Stage(this, id);
    this.stacks = new StageStacks(deployment, props.appName ?? 'ScaleStages', props.deploy);
    this.pipeline.addStage(deployment, {
      pre: props.manualApproval ? [new pipelines.ManualApprovalStep('Approve')] : [],
    });
    acknowledgeNist80053R5(this);
    acknowledgePipelineBuilds(this.pipeline);
  }
}

/**
 * CDK Pipelines' builds keep nothing but the synthesized app, in the artifact bucket, which encrypts it;
 * cdk-nag asks each CodeBuild project for a KMS key of its own (AwsSolutions-CB4).
 */
function acknowledgePipelineBuilds(pipeline: pipelines.CodePipeline): void {
  Validations.of(pipeline).acknowledge({
    id: 'AwsSolutions-CB4',
    reason:
      'The builds keep nothing but the synthesized app, in the artifact bucket, which encrypts it (S3-managed keys).',
  });
}

/** The repository, branch and connection name something CodeConnections can reach. */
function checkSource(props: StagePipelineProps): void {
  const literal = (value: string) => !Token.isUnresolved(value);
  if (literal(props.repository) && !/^[\w.-]+\/[\w.-]+$/.test(props.repository)) {
    throw new ScaleStagesError(
      `StagePipeline repository must be 'owner/name', such as 'example/shop'; got '${props.repository}'.`,
    );
  }
  if (
    literal(props.connectionArn) &&
    !/^arn:aws[\w-]*:(codeconnections|codestar-connections):[\w-]+:\d{12}:connection\/[\w-]+$/.test(
      props.connectionArn,
    )
  ) {
    throw new ScaleStagesError(
      `StagePipeline connectionArn must be the ARN of an AWS CodeConnections connection, such as 'arn:aws:codeconnections:eu-west-1:111111111111:connection/<id>'; got '${props.connectionArn}'.`,
    );
  }
  if (props.branch !== undefined && literal(props.branch) && !/^[^\s~^:?*[\\]+$/.test(props.branch)) {
    throw new ScaleStagesError(
      `StagePipeline branch must be a git branch name such as 'main'; got '${props.branch}'.`,
    );
  }
}
