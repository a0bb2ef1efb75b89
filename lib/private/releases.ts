import { Aws, Duration, Lazy, Stack } from 'aws-cdk-lib/core';
import * as cloudformation from 'aws-cdk-lib/aws-cloudformation';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import { compressedScript } from './assets';

/** The key of an instance's metadata that holds its release: id, wait handle and script. */
export const RELEASE_METADATA_KEY = 'ScaleStagesRelease';
/** Where the server keeps its releases' scripts and the id of the one that serves. */
export const RELEASE_DIR = '/opt/scale-stages/release';
/**
 * How long a deploy waits for a release to become healthy: cfn-hup's one-minute poll, the release phase,
 * the start commands and wait-for-app.sh's five minutes, and the previous release's restart on failure.
 */
const RELEASE_TIMEOUT = Duration.minutes(20);

/**
 * Makes the app of `instance` a release that a deploy swaps in place, without stopping the machine. The
 * release (`script`: the app's environment, release phase, start commands and health wait) is the
 * instance's metadata, which CloudFormation updates with no interruption; the user data only installs
 * cfn-hup, whose hook applies the metadata's release when a deploy changes it (within its one-minute
 * poll), and applies it itself at every boot (assets/scripts/apply-release.sh). Each release has a wait
 * condition of its own (`releaseId` in its logical id: a wait condition cannot be updated), created
 * after the instance's update, that holds the deploy until the release is healthy and fails it (rolling
 * back to the previous release, which the server starts again) when it is not. Returns the user data
 * commands.
 */
export function releaseInPlace(instance: ec2.Instance, releaseId: string, script: ec2.UserData): string[] {
  const scope = instance.node.scope!;
  const cfnInstance = instance.node.defaultChild as ec2.CfnInstance;
  const handle = new cloudformation.CfnWaitConditionHandle(scope, `ReleaseHandle${releaseId}`);
  const wait = new cloudformation.CfnWaitCondition(scope, `Release${releaseId}`, {
    handle: handle.ref,
    count: 1,
    timeout: String(RELEASE_TIMEOUT.toSeconds()),
  });
  wait.addResourceDependency(cfnInstance);
  cfnInstance.addMetadata(RELEASE_METADATA_KEY, {
    id: releaseId,
    waitHandle: handle.ref,
    script: Lazy.string({ produce: () => script.render() }),
  });
  // cfn-hup and cfn-get-metadata read the instance's metadata.
  instance.addToRolePolicy(
    new iam.PolicyStatement({ actions: ['cloudformation:DescribeStackResource'], resources: [Aws.STACK_ID] }),
  );
  const stack = Stack.of(instance);
  const resource = stack.getLogicalId(cfnInstance);
  const hupConfig = ['[main]', `stack=${Aws.STACK_ID}`, `region=${stack.region}`, 'interval=1'];
  const hook = [
    '[scale-stages-release]',
    'triggers=post.update',
    `path=Resources.${resource}.Metadata.${RELEASE_METADATA_KEY}`,
    `action=${RELEASE_DIR}/apply-release hook`,
    'runas=root',
  ];
  // The unit of the CloudFormation User Guide's cfn-hup example for systemd.
  const unit = [
    '[Unit]',
    'Description=cfn-hup daemon',
    '[Service]',
    'Type=simple',
    'ExecStart=/opt/aws/bin/cfn-hup',
    'Restart=always',
    '[Install]',
    'WantedBy=multi-user.target',
  ];
  return [
    `mkdir -p /etc/cfn/hooks.d ${RELEASE_DIR}`,
    `echo '${compressedScript('scripts/apply-release.sh')}' | base64 -d | gunzip > ${RELEASE_DIR}/apply-release.sh`,
    `cat > ${RELEASE_DIR}/apply-release <<'APPLY'\n#!/bin/bash\nexport STACK='${Aws.STACK_ID}' RESOURCE='${resource}' AWS_REGION='${stack.region}'\nexec bash ${RELEASE_DIR}/apply-release.sh "$@"\nAPPLY`,
    `chmod 700 ${RELEASE_DIR}/apply-release`,
    `cat > /etc/cfn/cfn-hup.conf <<'HUP'\n${hupConfig.join('\n')}\nHUP`,
    `cat > /etc/cfn/hooks.d/scale-stages-release.conf <<'HOOK'\n${hook.join('\n')}\nHOOK`,
    `cat > /etc/systemd/system/cfn-hup.service <<'UNIT'\n${unit.join('\n')}\nUNIT`,
    'systemctl daemon-reload',
    'systemctl enable cfn-hup',
    // Hooks are read when cfn-hup starts.
    'systemctl restart cfn-hup',
    `${RELEASE_DIR}/apply-release boot`,
  ];
}
