import { Stack, Validations } from 'aws-cdk-lib/core';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as cr from 'aws-cdk-lib/custom-resources';
import { IConstruct } from 'constructs';
import { acknowledgeAwsCdkHandler, afterHandlerLogGroup, BASIC_EXECUTION_ROLE } from './aws-cdk-handlers';

/** The AWS-managed prefix list of CloudFront's origin-facing servers (the same name in every region). */
export const CLOUDFRONT_ORIGIN_FACING = 'com.amazonaws.global.cloudfront.origin-facing';

const LOOKUP_ID = 'CloudFrontOriginFacingPrefixList';

/**
 * The peer "CloudFront's origin-facing servers": the AWS-managed prefix list, whose id differs per
 * region. The stack is environment-agnostic and synth runs without credentials, so the id is
 * looked up at deploy time (EC2 DescribeManagedPrefixLists through aws-cdk-lib's
 * AwsCustomResource), once per stack. CloudFront's VPC origins need the same rule on the origin's
 * security group (CloudFront Developer Guide, "Restrict access with VPC origins").
 *
 * A rule that names the list counts as its maximum size (55 entries) against the security
 * group's rules quota (60 inbound by default).
 */
export function cloudFrontOriginFacing(scope: IConstruct): ec2.IPeer {
  const stack = Stack.of(scope);
  const lookup = (stack.node.tryFindChild(LOOKUP_ID) as cr.AwsCustomResource | undefined) ?? newLookup(stack);
  return ec2.Peer.prefixList(lookup.getResponseField('PrefixLists.0.PrefixListId'));
}

function newLookup(stack: Stack): cr.AwsCustomResource {
  const call: cr.AwsSdkCall = {
    service: 'EC2',
    action: 'describeManagedPrefixLists',
    parameters: { Filters: [{ Name: 'prefix-list-name', Values: [CLOUDFRONT_ORIGIN_FACING] }] },
    physicalResourceId: cr.PhysicalResourceId.of(CLOUDFRONT_ORIGIN_FACING),
    outputPaths: ['PrefixLists.0.PrefixListId'],
  };
  const lookup = new cr.AwsCustomResource(stack, LOOKUP_ID, {
    onCreate: call,
    onUpdate: call,
    // Describe calls have no resource-level permissions.
    policy: cr.AwsCustomResourcePolicy.fromSdkCalls({ resources: cr.AwsCustomResourcePolicy.ANY_RESOURCE }),
    installLatestAwsSdk: false,
  });
  Validations.of(lookup).acknowledge({
    id: 'AwsSolutions-IAM5[Resource::*]',
    reason:
      'ec2:DescribeManagedPrefixLists has no resource-level permissions; the lookup reads one AWS-managed list.',
  });
  const handlerId = `AWS${cr.AwsCustomResource.PROVIDER_FUNCTION_UUID.replace(/-/g, '')}`;
  afterHandlerLogGroup(lookup, handlerId);
  acknowledgeAwsCdkHandler(
    stack,
    handlerId,
    "aws-cdk-lib's AwsCustomResource handler writes its own logs with the AWS-managed basic execution role, on a runtime aws-cdk-lib picks and moves forward with its releases.",
    [BASIC_EXECUTION_ROLE, 'L1'],
  );
  return lookup;
}
