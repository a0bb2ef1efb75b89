import * as ec2 from 'aws-cdk-lib/aws-ec2';

/** Whether an instance type runs on AWS Graviton (ARM). */
export function graviton(instanceType: ec2.InstanceType): boolean {
  return instanceType.architecture === ec2.InstanceArchitecture.ARM_64;
}

/**
 * The latest Amazon Linux 2023 image for the instance type's architecture, looked up by EC2 when the
 * server launches (`resolve:ssm:`). The template holds the parameter name, not an AMI id, so a new
 * AMI release never replaces a running server on the next deploy.
 */
export function serverImage(instanceType: ec2.InstanceType): ec2.IMachineImage {
  const arch = graviton(instanceType) ? 'arm64' : 'x86_64';
  return ec2.MachineImage.resolveSsmParameterAtLaunch(
    `/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-${arch}`,
  );
}
