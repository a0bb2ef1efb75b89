# The release phase: runs the app's migrations once per release, before the app of that release starts
# on this server. The first server of a release to get here claims it in the table
# scale_stages_releases of the app's database and runs the migrations; the others wait until it is
# done (and start their app then) or take it over when it failed or its lease ran out (a server that
# died). A failed migration exits 1, so the server never serves the release and its deploy fails.
# The migrations must be transactional (a failure leaves the schema as it was) and compatible with the
# release still serving (expand now, contract in a later release).
# Inputs: RELEASE_ID, MIGRATE_SCRIPT (the commands, run with bash -eu -o pipefail), the app environment
# (DATABASE_HOST/PORT/NAME/SECRET_ARN, AWS_REGION), DATABASE_CA_FILE (optional: verify RDS's
# certificate), MIGRATION_WAIT_SECONDS (how long to wait for another server, default 1500),
# MIGRATION_LEASE_SECONDS (when a claim counts as abandoned, default 3600), MIGRATION_POLL_SECONDS (5).
# The migrations get PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD, PGSSLMODE (and PGSSLROOTCERT).
(
set -euo pipefail
if [ -z "${DATABASE_HOST:-}" ] || [ -z "${DATABASE_SECRET_ARN:-}" ]; then
  echo "release phase: the app has migrations but no database (DATABASE_HOST, DATABASE_SECRET_ARN); connect one to the app tier" >&2
  exit 1
fi
c="$(aws secretsmanager get-secret-value --region "${AWS_REGION:-}" --secret-id "$DATABASE_SECRET_ARN" \
  --query SecretString --output text | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["username"]); print(s["password"])')"
export PGHOST="$DATABASE_HOST" PGPORT="${DATABASE_PORT:-5432}" PGDATABASE="${DATABASE_NAME:-app}"
export PGUSER="${c%%$'\n'*}" PGPASSWORD="${c#*$'\n'}" PGCONNECT_TIMEOUT=20 PGSSLMODE=require
if [ -s "${DATABASE_CA_FILE:-}" ]; then export PGSSLMODE=verify-full PGSSLROOTCERT="$DATABASE_CA_FILE"; fi
# The stage-1 server's own PostgreSQL, on loopback: TLS if it offers it, as the demo app does.
case "$PGHOST" in 127.* | localhost | ::1) export PGSSLMODE=prefer ;; esac
owner="$(hostname)"
q() {
  PGOPTIONS='-c client_min_messages=warning' psql -XqAt -v ON_ERROR_STOP=1 -v release="$RELEASE_ID" \
    -v owner="$owner" -v lease="${MIGRATION_LEASE_SECONDS:-3600}"
}
# Under a lock: servers booting together would race to create the table.
q <<'SQL'
BEGIN;
SELECT pg_advisory_xact_lock(hashtext('scale_stages_releases')) \gset
CREATE TABLE IF NOT EXISTS scale_stages_releases (release_id text PRIMARY KEY, state text NOT NULL,
  owner text NOT NULL, started_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz);
COMMIT;
SQL
deadline=$((SECONDS + ${MIGRATION_WAIT_SECONDS:-1500}))
while :; do
  # One statement claims the release: a new one, a failed one, or one whose lease ran out.
  claimed="$(q <<'SQL'
INSERT INTO scale_stages_releases AS r (release_id, state, owner) VALUES (:'release', 'running', :'owner')
ON CONFLICT (release_id) DO UPDATE SET state = 'running', owner = EXCLUDED.owner, started_at = now(),
  finished_at = NULL
WHERE r.state = 'failed' OR (r.state = 'running' AND r.started_at < now() - make_interval(secs => :lease))
RETURNING 'claimed';
SQL
)"
  if [ "$claimed" = claimed ]; then
    echo "release phase: running the migrations of release $RELEASE_ID"
    if bash -eu -o pipefail "$MIGRATE_SCRIPT"; then
      q <<<"UPDATE scale_stages_releases SET state = 'done', finished_at = now() WHERE release_id = :'release';"
      echo "release phase: release $RELEASE_ID migrated"
      exit 0
    fi
    q <<<"UPDATE scale_stages_releases SET state = 'failed', finished_at = now() WHERE release_id = :'release';"
    echo "release phase: the migrations of release $RELEASE_ID failed; this server does not start it" >&2
    exit 1
  fi
  state="$(q <<<"SELECT state FROM scale_stages_releases WHERE release_id = :'release';")"
  if [ "$state" = "done" ]; then
    echo "release phase: release $RELEASE_ID is already migrated"
    exit 0
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "release phase: another server has been migrating release $RELEASE_ID for too long; this server does not start it" >&2
    exit 1
  fi
  sleep "${MIGRATION_POLL_SECONDS:-5}"
done
)
