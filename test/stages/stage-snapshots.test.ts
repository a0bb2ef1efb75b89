/**
 * Every stack of every built stage as a snapshot: a safety net that shows a reviewer what a change does
 * to the templates; the assertions in the other tests are the spec. Asset hashes are masked
 * (test/asset-hash-serializer.ts), so a snapshot changes only when a template does.
 */
import { Template } from 'aws-cdk-lib/assertions';
import { BUILT_STAGES } from '../../lib/stages/stage-table';
import { synthStage } from '../helpers';

describe.each(BUILT_STAGES)('stage %s', (stage) => {
  const { template, edge, secondaries } = synthStage(stage);
  const stacks: [string, Template][] = [
    ['primary', template],
    ...(edge ? [['edge', edge] as [string, Template]] : []),
    ...secondaries.map((s) => [`region ${s.stack.region}`, s.template] as [string, Template]),
  ];

  test.each(stacks)('%s stack', (_name, t) => {
    expect(t.toJSON()).toMatchSnapshot();
  });
});
