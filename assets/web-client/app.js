// The example web client: asks the API (same origin, /api/*) for its status and, from stage 100k,
// for its session (kept in the cache, so every server knows it), and shows both.
function show(id, path) {
  fetch(path)
    .then((response) => response.json())
    .then((body) => {
      document.getElementById(id).textContent = JSON.stringify(body, null, 2);
    })
    .catch((error) => {
      document.getElementById(id).textContent = `the API did not answer: ${error}`;
    });
}
show('status', '/api/status');
show('session', '/api/session');
