import { Size } from 'aws-cdk-lib/core';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { IAppTier } from '../app-tier';
import { readAsset } from '../private/assets';
import { checkWholeNumber } from '../private/errors';
import { addShardEnvironment, MAX_SHARDS } from '../private/shards';
import { SeparatedDb } from './separated-db';

/** Properties of a `ShardedDb`. */
export interface ShardedDbProps {
  /**
   * The database that holds every user's data today. It stays as it is (its construct, logical id,
   * endpoint and secret) and becomes shard 0, which also holds the shard map.
   */
  readonly firstShard: SeparatedDb;
  /**
   * How many shards, the first included: 2 to 12 (each adds 22 resources to the stack, which
   * CloudFormation caps at 500). Adding one is a deploy that creates an empty
   * database, then `reshard apply` (the `reshardDocument`) moves its share of the users to it. Fewer
   * shards than before is refused at deploy time: each shard has deletion protection.
   */
  readonly shards: number;
  /**
   * The other shards' instance class.
   *
   * @default - the first shard's
   */
  readonly instanceType?: ec2.InstanceType;
  /**
   * The storage each other shard is created with.
   *
   * @default Size.gibibytes(20)
   */
  readonly allocatedStorage?: Size;
  /**
   * Whether each other shard keeps a standby in a second availability zone.
   *
   * @default false
   */
  readonly multiAz?: boolean;
  /**
   * The Secrets Manager endpoint the shards' rotation functions call, as `SeparatedDb` takes it (for
   * subnets with no route to the internet).
   *
   * @default - the rotation functions reach Secrets Manager through their subnets' own route
   */
  readonly secretsManagerEndpoint?: ec2.IInterfaceVpcEndpoint;
}

/**
 * PostgreSQL split by user over several databases (shards), past what one writer takes.
 *
 * Each user id falls in one of 1024 buckets, and a map on shard 0 says which shard holds each bucket
 * (docs/resharding.md), so a new shard takes only its share of the buckets and every other user stays
 * where it is. Every shard is a `SeparatedDb` with all it gives (isolated subnets, encryption, backups,
 * deletion protection, rotated credentials, logs) in the first shard's network and with its database
 * name. The app tier gets each shard's endpoint and secret (`connectApp`); the `reshardDocument`, an SSM
 * Run Command document, installs `reshard.sh` on an app server and runs it there: `init`, `plan`,
 * `apply` (copies, verifies and switches the buckets a new shard takes, while the app serves) and
 * `status`.
 */
export class ShardedDb extends Construct {
  /** The shards, by number: the first is `firstShard`. */
  public readonly shards: SeparatedDb[];
  /** The SSM Run Command document that runs `reshard.sh` on an app server (docs/resharding.md). */
  public readonly reshardDocument: ssm.CfnDocument;

  constructor(scope: Construct, id: string, props: ShardedDbProps) {
    super(scope, id);
    checkWholeNumber(this, 'shards', props.shards, 2, MAX_SHARDS);
    const first = props.firstShard;
    this.shards = [first];
    for (let i = 1; i < props.shards; i++) {
      this.shards.push(
        new SeparatedDb(this, `Shard${i}`, {
          vpc: first.vpc,
          vpcSubnets: first.vpcSubnets,
          instanceType: props.instanceType ?? first.instanceType,
          allocatedStorage: props.allocatedStorage,
          multiAz: props.multiAz,
          databaseName: first.databaseName,
          secretsManagerEndpoint: props.secretsManagerEndpoint,
          logRetention: first.logRetention,
        }),
      );
    }
    this.reshardDocument = new ssm.CfnDocument(this, 'ReshardDocument', {
      documentType: 'Command',
      updateMethod: 'NewVersion',
      content: reshardDocumentContent(),
    });
  }

  /**
   * Replicates the secret of every shard after the first to `region`, as `SeparatedDb.replicateSecretTo`
   * does the first's: a cross-region replica of a shard hands its region's app the replica secret.
   */
  public replicateSecretsTo(region: string): void {
    this.shards.slice(1).forEach((shard) => shard.replicateSecretTo(region));
  }

  /**
   * The app tier reaches every shard after the first (which keeps its own connection, `DATABASE_HOST`
   * and the rest) and reads its secret; it gets the shards' endpoints, ports and secret ARNs in shard
   * order, comma-separated, as DATABASE_SHARD_HOSTS, DATABASE_SHARD_PORTS and DATABASE_SHARD_SECRET_ARNS,
   * and how long it may cache the shard map as SHARD_MAP_TTL_SECONDS.
   */
  public connectApp(appTier: IAppTier): void {
    this.shards.slice(1).forEach((shard) => shard.allowApp(appTier));
    addShardEnvironment(
      appTier,
      this.shards.map((shard) => ({
        host: shard.database.dbInstanceEndpointAddress,
        port: shard.database.dbInstanceEndpointPort,
        secretArn: shard.secret.secretArn,
      })),
    );
  }
}

/**
 * The document's content: parameters checked by SSM before anything runs, then one shell step that
 * installs the PostgreSQL client when missing, writes reshard.sh to /opt/scale-stages/reshard.sh (so a
 * Session Manager shell can run it too) and runs it with the app's environment. Up to 48 hours, the
 * longest a Run Command step may take (`timeoutSeconds`, SSM Command document plugin reference).
 */
function reshardDocumentContent(): object {
  const script = readAsset('scripts/reshard.sh');
  return {
    schemaVersion: '2.2',
    description:
      'Moves users between PostgreSQL shards: reshard.sh init, status, plan or apply (docs/resharding.md).',
    parameters: {
      command: { type: 'String', allowedValues: ['init', 'status', 'plan', 'apply'], default: 'status' },
      shards: {
        type: 'String',
        description: 'The number of shards to spread the users over (plan and apply).',
        allowedPattern: '^([0-9]{1,2})?$',
        default: '',
      },
      tables: {
        type: 'String',
        description:
          'The sharded tables and their user-id columns, such as posts:user_id,likes:user_id (apply).',
        allowedPattern: '^([a-z_][a-z0-9_]*:[a-z_][a-z0-9_]*(,[a-z_][a-z0-9_]*:[a-z_][a-z0-9_]*)*)?$',
        default: '',
      },
    },
    mainSteps: [
      {
        action: 'aws:runShellScript',
        name: 'reshard',
        inputs: {
          timeoutSeconds: '172800',
          runCommand: [
            'set -euo pipefail',
            'command -v psql >/dev/null || dnf install -y -q postgresql16',
            'mkdir -p /opt/scale-stages',
            "cat > /opt/scale-stages/reshard.sh <<'RESHARD'",
            script.trimEnd(),
            'RESHARD',
            'chmod 755 /opt/scale-stages/reshard.sh',
            'set -a; . /etc/scale-stages/app.env; set +a',
            'args=({{command}})',
            'if [ -n "{{shards}}" ]; then args+=(--shards "{{shards}}"); fi',
            'if [ -n "{{tables}}" ]; then args+=(--tables "{{tables}}"); fi',
            '/opt/scale-stages/reshard.sh "${args[@]}"',
          ],
        },
      },
    ],
  };
}
