import { CfnOutput, Size, Stack, StackProps, Validations } from 'aws-cdk-lib';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';
import { AppSource } from '../app-source';
import { CdnStatic } from '../constructs/cdn-static';
import { SeparatedDb } from '../constructs/separated-db';
import { SingleServer } from '../constructs/single-server';
import { StageNetwork } from '../constructs/stage-network';
import { ScaleStagesError } from '../private/errors';
import { atLeast, BUILT_STAGES, STAGES, StageSizing } from './stage-table';
import { UserStage } from './user-stage';

/** Properties of a `StageStack`. */
export interface StageStackProps extends StackProps {
  /** The stage to build. Deploying a later stage to the same stack upgrades it in place. */
  readonly stage: UserStage;
  /**
   * The app the servers run.
   *
   * @default - the demo app, `AppSource.demo()`
   */
  readonly app?: AppSource;
  /**
   * The folder with the built web client, served by CloudFront from stage 100.
   *
   * @default - the small example client shipped with this library
   */
  readonly webClientPath?: string;
  /**
   * The app server instance type.
   *
   * @default - from the stage table: t4g.micro at stages 1 and 10
   */
  readonly serverInstanceType?: ec2.InstanceType;
  /**
   * The size of the stage-1 data volume.
   *
   * @default - from the stage table: 20 GiB
   */
  readonly dataVolumeSize?: Size;
  /**
   * The RDS instance class (stage 10 onwards).
   *
   * @default - from the stage table: t4g.micro at stage 10
   */
  readonly databaseInstanceType?: ec2.InstanceType;
  /**
   * The storage allocated to the RDS database at creation (stage 10 onwards).
   *
   * @default - from the stage table: 20 GiB at stage 10
   */
  readonly databaseAllocatedStorage?: Size;
}

/**
 * The whole single-region blueprint of one stage in one stack.
 *
 * The construct tree only grows from stage to stage: the network, the stage-1 server and the
 * database keep their ids (and so their logical ids), so deploying the next stage to the same stack
 * updates it in place and replaces no stateful resource.
 */
export class StageStack extends Stack {
  /** The stage this stack builds. */
  public readonly stage: UserStage;
  /** The network. */
  public readonly network: StageNetwork;
  /** The stage-1 server (stages 1 to 100). */
  public readonly server?: SingleServer;
  /** The RDS database (stage 10 onwards). */
  public readonly database?: SeparatedDb;
  /** The web client on S3 and CloudFront, with the API behind the same distribution (stage 100 onwards). */
  public readonly cdn?: CdnStatic;

  constructor(scope: Construct, id: string, props: StageStackProps) {
    const row = STAGES.find((s) => s.stage === props.stage);
    if (!row) {
      throw new ScaleStagesError(
        `StageStack stage must be one of ${STAGES.map((s) => `'${s.stage}'`).join(', ')}; got '${props.stage}'.`,
      );
    }
    if (!row.sizing) {
      throw new ScaleStagesError(
        `stage '${props.stage}' (${row.users.toLocaleString('en-US')} users) is not built yet in this version of cdk-scale-stages; built stages: ${BUILT_STAGES.join(', ')}.`,
      );
    }
    super(scope, id, {
      description: `cdk-scale-stages: the ${row.users.toLocaleString('en-US')}-user stage`,
      ...props,
    });
    this.stage = props.stage;
    const sizing: StageSizing = row.sizing;

    this.network = new StageNetwork(this, 'Network');

    this.server = new SingleServer(this, 'Server', {
      vpc: this.network.vpc,
      app: props.app,
      instanceType: props.serverInstanceType ?? new ec2.InstanceType(sizing.serverInstanceType),
      dataVolumeSize: props.dataVolumeSize ?? Size.gibibytes(sizing.dataVolumeGiB),
      localDatabase: !atLeast(this.stage, UserStage.USERS_10),
    });

    const port = this.server.app.port === 80 ? '' : `:${this.server.app.port}`;
    new CfnOutput(this, 'ServerUrl', {
      description: 'The app, served by the single server',
      value: `http://${this.server.publicIp}${port}`,
    });
    new CfnOutput(this, 'ServerInstanceId', {
      description: 'Shell access: aws ssm start-session --target <this id>',
      value: this.server.instance.instanceId,
    });

    if (atLeast(this.stage, UserStage.USERS_10)) {
      this.database = new SeparatedDb(this, 'Database', {
        vpc: this.network.vpc,
        vpcSubnets: this.network.dataSubnets,
        instanceType: props.databaseInstanceType ?? new ec2.InstanceType(sizing.databaseInstanceType!),
        allocatedStorage: props.databaseAllocatedStorage ?? Size.gibibytes(sizing.databaseStorageGiB!),
        multiAz: sizing.databaseMultiAz,
      });
      this.database.connectApp(this.server);
      new CfnOutput(this, 'DatabaseEndpoint', {
        description: 'The RDS PostgreSQL endpoint (reachable only from the app servers)',
        value: this.database.database.dbInstanceEndpointAddress,
      });
      new CfnOutput(this, 'DatabaseSecretArn', {
        description: 'The secret with the database credentials, managed and rotated by RDS',
        value: this.database.secret.secretArn,
      });
    }

    if (atLeast(this.stage, UserStage.USERS_100)) {
      this.cdn = new CdnStatic(this, 'Cdn', { webClientPath: props.webClientPath });
      this.cdn.addApiOrigin(
        new origins.HttpOrigin(this.server.publicDnsName, {
          protocolPolicy: cloudfront.OriginProtocolPolicy.HTTP_ONLY,
          httpPort: this.server.app.port,
        }),
      );
      Validations.of(this.cdn.distribution).acknowledge({
        id: 'AwsSolutions-CFR5',
        reason:
          'The stage-100 server has no TLS certificate, so CloudFront reaches its API over HTTP; the stage-1k load balancer takes HTTPS when given a certificate.',
      });
      new CfnOutput(this, 'WebClientUrl', {
        description: 'The web client; its /api/* paths reach the app',
        value: this.cdn.url,
      });
    }
  }
}
