import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { IConstruct } from 'constructs';
import { ScaleStagesError } from './errors';

/** The subnets a data construct goes in; fails with the prop's name when the selection finds none. */
export function checkSubnets(
  scope: IConstruct,
  vpc: ec2.IVpc,
  vpcSubnets: ec2.SubnetSelection,
): ec2.SelectedSubnets {
  let selected: ec2.SelectedSubnets;
  try {
    selected = vpc.selectSubnets(vpcSubnets);
  } catch (error) {
    throw new ScaleStagesError(
      `vpcSubnets select no subnets in this vpc (${(error as Error).message}); pass vpcSubnets, for example { subnetType: ec2.SubnetType.PRIVATE_ISOLATED }.`,
      scope,
    );
  }
  return selected;
}
