import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';

/**
 * The servers that run the user's app, as the data constructs see them: something that can be
 * let through a security group, granted IAM permissions and handed environment variables.
 *
 * `SingleServer` implements it today; the load-balanced fleet of later stages does too, so a
 * database or cache connects to either the same way.
 */
export interface IAppTier extends ec2.IConnectable, iam.IGrantable {
  /**
   * Hands one environment variable to the app on every server.
   *
   * @param name upper case letters, digits and underscores, such as `DATABASE_HOST`
   * @param value the value; deploy-time values (tokens) are fine
   */
  addEnvironment(name: string, value: string): void;
}
