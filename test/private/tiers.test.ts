import { App, Stack } from 'aws-cdk-lib/core';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { markTier, tierOf } from '../../lib/private/tiers';

// The integ snapshots hold each stage's manifest: a mark must leave no trace in the cloud assembly.
test('a tier mark reaches neither the template nor the manifest', () => {
  const synth = (mark: boolean) => {
    const app = new App();
    const stack = new Stack(app, 'Stack');
    const bucket = new s3.Bucket(stack, 'Bucket');
    const logs = new s3.Bucket(stack, 'Logs');
    if (mark) markTier(bucket, 'bucket', logs);
    const assembly = app.synth();
    return { manifest: assembly.manifest, template: assembly.getStackByName('Stack').template };
  };
  expect(synth(true)).toEqual(synth(false));
});

test('every part of a box knows the box, whose first part names it', () => {
  const stack = new Stack();
  const bucket = new s3.Bucket(stack, 'Bucket');
  const part = new s3.Bucket(stack, 'Part');
  markTier(bucket, 'bucket', part);
  expect(tierOf(part)).toBe(tierOf(bucket));
  expect(tierOf(bucket)).toEqual({ tier: 'bucket', parts: [bucket, part] });
  expect(tierOf(new s3.Bucket(stack, 'Unmarked'))).toBeUndefined();
});
