import { CfnResource, Stack, Validations } from 'aws-cdk-lib/core';
import { IConstruct } from 'constructs';

/** cdk-nag's finding on a Lambda role that uses the AWS-managed basic execution role. */
export const BASIC_EXECUTION_ROLE =
  'IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]';

/**
 * Acknowledges, with one reason, what cdk-nag's AwsSolutions pack finds on one of aws-cdk-lib's own
 * deploy-time handlers (a singleton Lambda per stack that this library does not write): its role
 * and runtime are aws-cdk-lib's design. Does nothing when the stack has no such handler.
 *
 * @param handlerId the handler's construct id at the stack's root
 * @param findings AwsSolutions rule ids, without the `AwsSolutions-` prefix
 */
export function acknowledgeAwsCdkHandler(
  scope: IConstruct,
  handlerId: string,
  reason: string,
  findings: string[],
): void {
  const handler = Stack.of(scope).node.tryFindChild(handlerId);
  if (!handler) return;
  Validations.of(handler).acknowledge(
    ...findings.map((finding) => ({ id: `AwsSolutions-${finding}`, reason })),
  );
}

/**
 * Makes the custom resources under `invoker` wait for the log group of the aws-cdk-lib handler that
 * serves them (a `LogGroup` beside the handler, as the feature flag
 * `@aws-cdk/aws-lambda:useCdkManagedLogGroup` adds). Lambda creates `/aws/lambda/<function>` itself
 * when a function is first invoked, so a custom resource invoked before the stack creates that log
 * group makes it fail with "already exists". Only the custom resources wait: the handler's own
 * parts come before its log group. Does nothing when the handler has no log group.
 *
 * @param handlerId the handler's construct id at the stack's root
 */
export function afterHandlerLogGroup(invoker: IConstruct, handlerId: string): void {
  const logGroup = Stack.of(invoker).node.tryFindChild(handlerId)?.node.tryFindChild('LogGroup');
  if (!logGroup) return;
  for (const child of invoker.node.findAll()) {
    if (child instanceof CfnResource && child.cfnResourceType.startsWith('Custom::')) {
      child.node.addDependency(logGroup);
    }
  }
}
