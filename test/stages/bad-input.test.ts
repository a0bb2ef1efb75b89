/**
 * Bad input a newcomer gives StageStack and the constructs: each fails at synth with one clear
 * message that names the prop, the value and what is valid (issue 13, part 4).
 */
import { Size, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import {
  LoadBalancedTier,
  ScaleStagesError,
  ScaleStagesErrors,
  SeparatedDb,
  StageNetwork,
  StageStack,
  UserStage,
} from '../../lib';
import { networkStack, newApp } from '../helpers';

const type = (name: string) => new ec2.InstanceType(name);

test.each<[string, Partial<ConstructorParameters<typeof StageStack>[2]>, RegExp]>([
  [
    'an unknown size',
    { stage: UserStage.USERS_1, serverInstanceType: type('t4g.huge') },
    /instanceType must be an instance type '<family>\.<size>' that EC2 knows.*got 't4g\.huge' \(sizes: .*micro/,
  ],
  [
    'an unknown family',
    { stage: UserStage.USERS_1K, serverInstanceType: type('x9z.large') },
    /instanceType must be .*got 'x9z\.large' \('x9z' is not an instance family\)/,
  ],
  [
    "the RDS 'db.' prefix",
    { stage: UserStage.USERS_10, databaseInstanceType: type('db.t4g.micro') },
    /instanceType takes the instance class without the 'db\.' prefix \(the construct adds it\); got 'db\.t4g\.micro', give 't4g\.micro'/,
  ],
  [
    "the ElastiCache 'cache.' prefix",
    { stage: UserStage.USERS_100K, databaseReplicaInstanceType: type('cache.m7g.large') },
    /without the 'cache\.' prefix.*give 'm7g\.large'/,
  ],
  [
    'a NAT instance of an unknown type',
    { stage: UserStage.USERS_1K, natInstanceType: type('t4g.enormous') },
    /natInstanceType must be an instance type .*got 't4g\.enormous'/,
  ],
])('StageStack: %s fails with the prop, the value and the choices', (_name, props, message) => {
  expect(() => new StageStack(newApp(), 'S', props as ConstructorParameters<typeof StageStack>[2])).toThrow(
    message,
  );
});

test('a stack name over 128 characters fails (a CloudFormation limit)', () => {
  expect(() => new StageStack(newApp(), 'S'.repeat(200), { stage: UserStage.USERS_1 })).toThrow(
    /the stack name must be 128 characters at most \(a CloudFormation limit\); got 200 characters/,
  );
  expect(() => new StageStack(newApp(), 'S'.repeat(128), { stage: UserStage.USERS_1 })).not.toThrow();
});

test('StageNetwork: a NAT instance type without NAT gateways fails instead of a stack trace', () => {
  const stack = new Stack(newApp(), 'T');
  expect(() => new StageNetwork(stack, 'Network', { natInstanceType: type('t4g.nano') })).toThrow(
    /T\/Network: natInstanceType 't4g\.nano' needs natGateways of 1 or 2 .*got natGateways 0/,
  );
});

test('LoadBalancedTier: servers in subnets without egress fail: their boot could install nothing', () => {
  const { stack, vpc } = networkStack(); // a StageNetwork without NAT: the App subnets are isolated
  expect(() => new LoadBalancedTier(stack, 'Web', { vpc })).toThrow(
    /Test\/Network: the load balancer and its servers need a way out .* this network has no NAT \(natGateways 0\)/,
  );
  expect(
    () =>
      new LoadBalancedTier(stack, 'Web2', { vpc, vpcSubnets: { subnetGroupName: StageNetwork.APP_SUBNETS } }),
  ).toThrow(/Test\/Web2: vpcSubnets selects isolated subnets: the servers would have no way out/);
});

test('SeparatedDb: allocatedStorage above 100 GiB raises the autoscaling ceiling instead of blaming maxAllocatedStorage', () => {
  const { stack, vpc } = networkStack();
  new SeparatedDb(stack, 'Database', { vpc, allocatedStorage: Size.gibibytes(200) });
  Template.fromStack(stack).hasResourceProperties('AWS::RDS::DBInstance', {
    AllocatedStorage: '200',
    MaxAllocatedStorage: 300,
  });
});

test('a consumer catches bad input by class (ScaleStagesError) or, in any jsii language, with ScaleStagesErrors', () => {
  let caught: unknown;
  try {
    new StageStack(newApp(), 'S', { stage: UserStage.USERS_1, serverInstanceType: type('t4g.huge') });
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ScaleStagesError);
  expect(ScaleStagesErrors.isScaleStagesError(caught)).toBe(true);
  expect(ScaleStagesErrors.isScaleStagesError(new Error('t4g.huge'))).toBe(false);
  expect(ScaleStagesErrors.isScaleStagesError(undefined)).toBe(false);
});
