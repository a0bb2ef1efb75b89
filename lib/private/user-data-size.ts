import { Stack } from 'aws-cdk-lib/core';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { IConstruct } from 'constructs';

/** EC2's limit on user data, in raw form before base64 encoding (EC2 User Guide, "Work with instance user data"). */
export const USER_DATA_LIMIT_BYTES = 16 * 1024;

/** What a value known only at deploy time (an ARN, an endpoint, an id) counts as: more than most are. */
export const TOKEN_ALLOWANCE_BYTES = 128;
const PSEUDO_PARAMETER_BYTES: Record<string, number> = {
  'AWS::Region': 20,
  'AWS::AccountId': 12,
  'AWS::Partition': 16,
  'AWS::URLSuffix': 20,
};

/** A resolved CloudFormation value. */
type Resolved = string | number | boolean | null | undefined | Resolved[] | { [key: string]: Resolved };

/**
 * An upper estimate of the raw size in bytes of a value that CloudFormation hands to a service after
 * resolving it (user data, for example): literal text counts as UTF-8 bytes, a nested Fn::Base64 as
 * the size of its encoding (ceil(n/3)*4), a pseudo parameter as its longest value, and any other token
 * (a resource's ARN, endpoint or id) as TOKEN_ALLOWANCE_BYTES, since its real length is known only at
 * deploy time.
 */
export function estimatedBytes(value: Resolved): number {
  if (typeof value === 'string') return Buffer.byteLength(value, 'utf8');
  if (typeof value === 'number' || typeof value === 'boolean') return String(value).length;
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const join = value['Fn::Join'];
    if (Array.isArray(join) && typeof join[0] === 'string' && Array.isArray(join[1])) {
      const separator = Buffer.byteLength(join[0], 'utf8');
      return (
        join[1].reduce<number>((sum, part) => sum + estimatedBytes(part), 0) +
        separator * (join[1].length - 1)
      );
    }
    if ('Fn::Base64' in value) return Math.ceil(estimatedBytes(value['Fn::Base64']) / 3) * 4;
    if (typeof value.Ref === 'string' && value.Ref in PSEUDO_PARAMETER_BYTES)
      return PSEUDO_PARAMETER_BYTES[value.Ref];
  }
  return value === undefined || value === null ? 0 : TOKEN_ALLOWANCE_BYTES;
}

/**
 * Fails synth when `userData` would be over EC2's 16 KB, naming its size and the way out: an app shipped
 * as an S3 asset (`AppSource.fromAsset`) instead of inline commands. Checked once the construct tree is
 * complete, since the environment file and other tiers add to the user data until then.
 */
export function checkUserDataSize(scope: IConstruct, userData: ec2.UserData): void {
  scope.node.addValidation({
    validate: () => {
      const bytes = estimatedBytes(Stack.of(scope).resolve(userData.render()) as Resolved);
      if (bytes <= USER_DATA_LIMIT_BYTES) return [];
      return [
        `the servers' user data is about ${bytes.toLocaleString('en-US')} bytes, over the ${USER_DATA_LIMIT_BYTES.toLocaleString('en-US')} (16 KB) EC2 takes before base64 encoding; ship the app as an S3 asset instead of inline commands: AppSource.fromAsset('<folder with start.sh>').`,
      ];
    },
  });
}
