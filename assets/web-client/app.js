// The example web client: asks the API (same origin, /api/*) for its status and shows it.
fetch('/api/status')
  .then((response) => response.json())
  .then((body) => {
    document.getElementById('status').textContent = JSON.stringify(body, null, 2);
  })
  .catch((error) => {
    document.getElementById('status').textContent = `the API did not answer: ${error}`;
  });
