import { Fn, RemovalPolicy, Validations } from 'aws-cdk-lib/core';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as rds from 'aws-cdk-lib/aws-rds';
import { Construct } from 'constructs';
import { IAppTier } from '../app-tier';
import { DATABASE_LOG_EXPORTS } from '../private/database-logs';
import { checkWholeNumber } from '../private/errors';
import { checkInstanceType } from '../private/servers';
import { checkSubnets } from '../private/subnets';
import { markTier } from '../private/tiers';
import { SeparatedDb } from './separated-db';

/** Properties of a `ReplicatedDb`. */
export interface ReplicatedDbProps {
  /** The database to replicate. It stays where it is: its construct and resources do not change. */
  readonly primary: SeparatedDb;
  /**
   * How many read replicas; RDS for PostgreSQL allows 15.
   *
   * @default 1
   */
  readonly replicas?: number;
  /**
   * The replicas' instance class (without the `db.` prefix). A replica smaller than the primary
   * can fall behind under a heavy write load.
   *
   * @default - the primary's instance class
   */
  readonly instanceType?: ec2.InstanceType;
}

/**
 * Read replicas of an existing `SeparatedDb`: the read scaling of stage 100k.
 *
 * The replicas go in the primary's subnets, spread over its availability zones, each with its own
 * security group. They inherit the primary's encryption, use its parameter group (TLS required)
 * and log exports, and grow their storage as the primary does. The primary is not touched: adding `ReplicatedDb` to
 * a stack creates the replicas and changes nothing that exists.
 *
 * A replica holds no data of its own, so its removal policy is DESTROY: CloudFormation takes no
 * final snapshot of a read replica whatever the policy says, and the primary keeps the data.
 */
export class ReplicatedDb extends Construct implements ec2.IConnectable {
  /** The read replicas. */
  public readonly replicas: rds.DatabaseInstanceReadReplica[];
  /** The replicas' endpoint addresses, in replica order. */
  public readonly readerEndpoints: string[];
  /** The replicas' security groups. */
  public readonly connections: ec2.Connections;

  constructor(scope: Construct, id: string, props: ReplicatedDbProps) {
    super(scope, id);
    const primary = props.primary;
    const count = props.replicas ?? 1;
    const instanceType = props.instanceType ?? primary.instanceType;
    checkWholeNumber(this, 'replicas', count, 1, 15, 'RDS for PostgreSQL allows 15 read replicas');
    checkInstanceType(this, instanceType);

    const subnets = checkSubnets(this, primary.vpc, primary.vpcSubnets);
    const subnetGroup = new rds.SubnetGroup(this, 'SubnetGroup', {
      vpc: primary.vpc,
      vpcSubnets: primary.vpcSubnets,
      description: 'ReplicatedDb: the subnets of the primary database',
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const source = primary.database.node.defaultChild as rds.CfnDBInstance;
    const maxAllocatedStorage = source.maxAllocatedStorage;
    // Checked at synth, after escape hatches have had their say.
    this.node.addValidation({
      validate: () =>
        source.manageMasterUserPassword === true
          ? [
              'the primary lets RDS manage its master password (ManageMasterUserPassword), and RDS creates no read replica of such an instance (RDS User Guide, "Password management with Amazon RDS and AWS Secrets Manager", Limitations). Keep the master password in a stack-generated secret, as SeparatedDb does by default.',
            ]
          : [],
    });

    this.replicas = [];
    const securityGroups: ec2.ISecurityGroup[] = [];
    for (let i = 1; i <= count; i++) {
      const securityGroup = new ec2.SecurityGroup(this, `Replica${i}SecurityGroup`, {
        vpc: primary.vpc,
        description: `ReplicatedDb replica ${i}: PostgreSQL from connected app tiers only; no outbound traffic`,
        allowAllOutbound: false,
      });
      const replica = new rds.DatabaseInstanceReadReplica(this, `Replica${i}`, {
        sourceDatabaseInstance: primary.database,
        instanceType,
        vpc: primary.vpc,
        subnetGroup,
        availabilityZone: subnets.availabilityZones[(i - 1) % subnets.availabilityZones.length],
        securityGroups: [securityGroup],
        storageType: rds.StorageType.GP3,
        maxAllocatedStorage,
        parameterGroup: primary.parameterGroup,
        caCertificate: rds.CaCertificate.RDS_CA_RSA2048_G1,
        iamAuthentication: true,
        cloudwatchLogsExports: DATABASE_LOG_EXPORTS,
        cloudwatchLogsRetention: primary.logRetention,
        autoMinorVersionUpgrade: true,
        publiclyAccessible: false,
        deletionProtection: false,
        removalPolicy: RemovalPolicy.DESTROY,
      });
      Validations.of(replica).acknowledge(
        {
          id: 'AwsSolutions-RDS2',
          reason:
            'A read replica inherits the storage encryption and key of its encrypted primary; CloudFormation rejects StorageEncrypted beside SourceDBInstanceIdentifier.',
        },
        {
          id: 'AwsSolutions-RDS3',
          reason:
            'A read replica is not Multi-AZ: the replicas are spread over availability zones and the primary is Multi-AZ.',
        },
        {
          id: 'AwsSolutions-RDS10',
          reason:
            'A read replica holds no data of its own; without deletion protection a lower replica count can remove it.',
        },
        {
          id: 'AwsSolutions-RDS11',
          reason:
            'The replica is in isolated subnets and admits only the app security group; a non-standard port adds no protection.',
        },
      );
      this.replicas.push(replica);
      securityGroups.push(securityGroup);
    }
    // The replicas of one primary and one instance class are one box of the diagrams.
    const [first, ...others] = this.replicas;
    markTier(first, 'replica', ...others);
    this.readerEndpoints = this.replicas.map((r) => r.dbInstanceEndpointAddress);
    this.connections = new ec2.Connections({
      securityGroups,
      defaultPort: primary.connections.defaultPort,
    });
  }

  /**
   * Lets an app tier read from the replicas: opens the database port of every replica to its
   * security group and hands it DATABASE_READER_HOSTS, the replicas' addresses separated by commas.
   * The port, the database name and the credentials are the primary's (`SeparatedDb.connectApp`).
   */
  public connectApp(appTier: IAppTier): void {
    this.connections.allowDefaultPortFrom(appTier, 'PostgreSQL reads from the app tier');
    appTier.addEnvironment('DATABASE_READER_HOSTS', Fn.join(',', this.readerEndpoints));
  }
}
