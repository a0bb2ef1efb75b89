import * as vm from 'vm';
import { routingCode } from '../lib/stages/regional-routing';

// Runs stage 10m's real routing function (the code the template carries) with CloudFront-shaped
// events and a stand-in for the `cloudfront` module: what it selects is what CloudFront would be
// told to do. That CloudFront honours it is AWS's part (checked against the helper-methods docs).

interface Calls {
  selected?: string;
  group?: { originIds: { originId: string }[]; failoverCriteria: { statusCodes: number[] } };
}

function run(
  regions: string[],
  request: { method: string; uri: string },
  options: { edge?: string; writer?: string; writerRegion?: string } = {},
): { request: { uri: string }; calls: Calls } {
  const calls: Calls = {};
  const cf = {
    edgeLocation: options.edge ? { name: 'XXX', serverIp: '192.0.2.1', region: options.edge } : undefined,
    kvs: () => ({
      get: async (key: string) => {
        if (key !== 'writer-region' || options.writer === undefined) throw new Error(`key not found: ${key}`);
        return options.writer;
      },
    }),
    selectRequestOriginById: (id: string) => (calls.selected = id),
    createRequestOriginGroup: (group: Calls['group']) => (calls.group = group),
  };
  const code = routingCode(regions, options.writerRegion).replace(
    "import cf from 'cloudfront';",
    'const cf = __cf;',
  );
  const context: { __cf: typeof cf; handler?: (event: object) => Promise<{ uri: string }> } = { __cf: cf };
  vm.runInNewContext(`${code}\nthis.handler = handler;`, context);
  return { request: context.handler!({ request: { ...request } }) as never, calls };
}

async function route(...args: Parameters<typeof run>) {
  const { request, calls } = run(...args);
  return { request: await request, calls };
}

const TWO = ['us-east-1', 'eu-west-1'];
const THREE = ['us-east-1', 'eu-west-1', 'ap-northeast-1'];

test("the code starts with the import CloudFront requires and fits CloudFront Functions' 10 KB", () => {
  const code = routingCode(['us-east-1', 'eu-west-1', 'ap-northeast-1', 'sa-east-1', 'ap-southeast-2']);
  expect(code.startsWith("import cf from 'cloudfront';")).toBe(true);
  expect(Buffer.byteLength(code)).toBeLessThan(10 * 1024);
  expect(code).not.toContain('const CONFIG = {};');
  expect(code).not.toMatch(/^\s*\/\//m); // comments are left out of the template
});

describe.each([
  // [regions, the viewer's regional edge cache, the origin group it gets]
  [TWO, 'us-east-1', ['app-us-east-1', 'app-eu-west-1']],
  [TWO, 'us-west-2', ['app-us-east-1', 'app-eu-west-1']],
  [TWO, 'eu-central-1', ['app-eu-west-1', 'app-us-east-1']],
  [TWO, 'eu-west-2', ['app-eu-west-1', 'app-us-east-1']],
  // Tokyo to Dublin is about 9,600 km, to Northern Virginia about 10,900 km.
  [THREE, 'ap-northeast-1', ['app-ap-northeast-1', 'app-eu-west-1']],
  [THREE, 'ap-southeast-1', ['app-ap-northeast-1', 'app-eu-west-1']],
  [THREE, 'sa-east-1', ['app-us-east-1', 'app-eu-west-1']],
])('regions %j, edge cache %s', (regions, edge, group) => {
  test.each(['GET', 'HEAD', 'OPTIONS'])('%s: the nearest two, failing over on 5xx', async (method) => {
    const { request, calls } = await route(regions, { method, uri: '/api/status' }, { edge });
    expect(calls.selected).toBeUndefined();
    expect(calls.group).toEqual({
      originIds: group.map((originId) => ({ originId })),
      failoverCriteria: { statusCodes: [500, 502, 503, 504] },
    });
    expect(request.uri).toBe('/api/status');
  });
});

test('reads without a known edge cache go to the primary, then the next region', async () => {
  for (const edge of [undefined, 'xx-nowhere-1']) {
    const { calls } = await route(THREE, { method: 'GET', uri: '/api/status' }, { edge });
    expect(calls.group!.originIds).toEqual([{ originId: 'app-us-east-1' }, { originId: 'app-eu-west-1' }]);
  }
});

describe.each(['POST', 'PUT', 'PATCH', 'DELETE'])('%s', (method) => {
  test('goes to the primary while the store names no writer', async () => {
    const { calls } = await route(TWO, { method, uri: '/api/uploads' }, { edge: 'eu-west-2' });
    expect(calls).toEqual({ selected: 'app-us-east-1' });
  });

  test('goes to the writer region the store names, wherever the viewer is', async () => {
    const { calls } = await route(
      THREE,
      { method, uri: '/api/uploads' },
      { edge: 'us-east-1', writer: 'eu-west-1' },
    );
    expect(calls).toEqual({ selected: 'app-eu-west-1' });
  });

  test('ignores a writer that is not a region of the app', async () => {
    const { calls } = await route(TWO, { method, uri: '/api/uploads' }, { writer: 'eu-central-1' });
    expect(calls).toEqual({ selected: 'app-us-east-1' });
  });
});

describe('after a promotion, when a region other than the primary writes', () => {
  test.each(['GET', 'HEAD', 'POST', 'DELETE'])(
    '%s goes to the writer the store names, nearest or not: the other replicas follow the lost primary',
    async (method) => {
      const { calls } = await route(
        THREE,
        { method, uri: '/api/status' },
        { edge: 'ap-northeast-1', writer: 'eu-west-1' },
      );
      expect(calls).toEqual({ selected: 'app-eu-west-1' });
    },
  );

  test('the stack change (writerRegion) does the same without the store', async () => {
    const { calls } = await route(
      THREE,
      { method: 'GET', uri: '/api/status' },
      { edge: 'us-east-1', writerRegion: 'eu-west-1' },
    );
    expect(calls).toEqual({ selected: 'app-eu-west-1' });
  });

  test('the store wins over the stack change, so the primary can take the writes back first', async () => {
    const { calls } = await route(
      THREE,
      { method: 'GET', uri: '/api/status' },
      { edge: 'ap-northeast-1', writerRegion: 'eu-west-1', writer: 'us-east-1' },
    );
    expect(calls.group!.originIds[0]).toEqual({ originId: 'app-ap-northeast-1' });
  });
});

test('/_region/<region>/... is pinned to that region, without the prefix', async () => {
  const { request, calls } = await route(TWO, { method: 'POST', uri: '/_region/eu-west-1/api/status' });
  expect(calls).toEqual({ selected: 'app-eu-west-1' });
  expect(request.uri).toBe('/api/status');
});

test('/_region/ with a region the app does not run in is routed like any request', async () => {
  const { request, calls } = await route(TWO, { method: 'GET', uri: '/_region/eu-central-1/api/status' });
  expect(calls.group).toBeDefined();
  expect(request.uri).toBe('/_region/eu-central-1/api/status');
});
