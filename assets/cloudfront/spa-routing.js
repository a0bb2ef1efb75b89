// CloudFront Function (viewer request) for the web client: a path without a file extension is a
// route of the single-page app, so it is served /index.html. Only the web client's behavior runs
// it, so API responses (404s included) pass through untouched.
function handler(event) {
  var request = event.request;
  var last = request.uri.split('/').pop();
  if (last.indexOf('.') === -1) {
    request.uri = '/index.html';
  }
  return request;
}
