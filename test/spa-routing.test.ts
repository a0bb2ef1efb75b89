import * as fs from 'fs';
import * as path from 'path';
import * as vm from 'vm';

// Runs the CloudFront Function's real code with CloudFront-shaped events.
const code = fs.readFileSync(path.join(__dirname, '..', 'assets', 'cloudfront', 'spa-routing.js'), 'utf8');
const context: { handler?: (event: object) => { uri: string } } = {};
vm.runInNewContext(`${code}\nthis.handler = handler;`, context);

test.each([
  ['/', '/index.html'],
  ['/orders/42', '/index.html'],
  ['/settings/', '/index.html'],
  ['/app.js', '/app.js'],
  ['/assets/logo.svg', '/assets/logo.svg'],
])('%s is served from %s', (uri, served) => {
  expect(context.handler!({ request: { uri, method: 'GET' } }).uri).toBe(served);
});
