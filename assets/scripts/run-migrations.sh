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
# With ShardedDb (DATABASE_SHARD_HOSTS, _PORTS, _SECRET_ARNS) the migrations run on every shard, once
# each. The migrations get PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD, PGSSLMODE (and PGSSLROOTCERT)
# of the database they run on, and SHARD, its number (0 without shards).
(
set -euo pipefail
if [ -z "${DATABASE_HOST:-}" ] || [ -z "${DATABASE_SECRET_ARN:-}" ]; then
  echo "release phase: the app has migrations but no database (DATABASE_HOST, DATABASE_SECRET_ARN); connect one to the app tier" >&2
  exit 1
fi
# connect HOST PORT SECRET_ARN: the PG* variables of psql for a database, as the app's user.
connect() {
  local c
  c="$(aws secretsmanager get-secret-value --region "${AWS_REGION:-}" --secret-id "$3" \
    --query SecretString --output text | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["username"]); print(s["password"])')"
  export PGHOST="$1" PGPORT="$2" PGDATABASE="${DATABASE_NAME:-app}"
  export PGUSER="${c%%$'\n'*}" PGPASSWORD="${c#*$'\n'}" PGCONNECT_TIMEOUT=20 PGSSLMODE=require
  if [ -s "${DATABASE_CA_FILE:-}" ]; then export PGSSLMODE=verify-full PGSSLROOTCERT="$DATABASE_CA_FILE"; fi
  # The stage-1 server's own PostgreSQL, on loopback: TLS if it offers it, as the demo app does.
  case "$PGHOST" in 127.* | localhost | ::1) export PGSSLMODE=prefer ;; esac
}
connect "$DATABASE_HOST" "${DATABASE_PORT:-5432}" "$DATABASE_SECRET_ARN"
# The databases the migrations run on, in order: every shard (ShardedDb; shard 0 is the app's
# database, which holds the claims), or the app's database alone.
hosts=("$DATABASE_HOST") ports=("${DATABASE_PORT:-5432}") secrets=("$DATABASE_SECRET_ARN")
if [ -n "${DATABASE_SHARD_HOSTS:-}" ]; then
  IFS=, read -ra hosts <<<"$DATABASE_SHARD_HOSTS"
  IFS=, read -ra ports <<<"${DATABASE_SHARD_PORTS:-}"
  IFS=, read -ra secrets <<<"${DATABASE_SHARD_SECRET_ARNS:-}"
fi
owner="$(hostname)"
q() {
  PGOPTIONS='-c client_min_messages=warning' psql -XqAt -v ON_ERROR_STOP=1 -v release="$RELEASE_ID" \
    -v owner="$owner" -v lease="${MIGRATION_LEASE_SECONDS:-3600}" -v shards="${#hosts[@]}"
}
# Under a lock: servers booting together would race to create the table.
q <<'SQL'
BEGIN;
SELECT pg_advisory_xact_lock(hashtext('scale_stages_releases')) \gset
CREATE TABLE IF NOT EXISTS scale_stages_releases (release_id text PRIMARY KEY, state text NOT NULL,
  owner text NOT NULL, started_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz);
CREATE TABLE IF NOT EXISTS scale_stages_release_shards (release_id text NOT NULL, shard int NOT NULL,
  PRIMARY KEY (release_id, shard));
COMMIT;
SQL
# A release done before its shards were counted (or before there were shards) is done on shard 0.
q <<<"INSERT INTO scale_stages_release_shards SELECT release_id, 0 FROM scale_stages_releases WHERE release_id = :'release' AND state = 'done' ON CONFLICT DO NOTHING;"
deadline=$((SECONDS + ${MIGRATION_WAIT_SECONDS:-1500}))
while :; do
  # One statement claims the release: a new one, a failed one, one whose lease ran out, or one done on
  # fewer shards than there are now (a shard was added).
  claimed="$(q <<'SQL'
INSERT INTO scale_stages_releases AS r (release_id, state, owner) VALUES (:'release', 'running', :'owner')
ON CONFLICT (release_id) DO UPDATE SET state = 'running', owner = EXCLUDED.owner, started_at = now(),
  finished_at = NULL
WHERE r.state = 'failed' OR (r.state = 'running' AND r.started_at < now() - make_interval(secs => :lease))
  OR (r.state = 'done' AND (SELECT count(*) FROM scale_stages_release_shards s
    WHERE s.release_id = r.release_id) < :shards)
RETURNING 'claimed';
SQL
)"
  if [ "$claimed" = claimed ]; then
    echo "release phase: running the migrations of release $RELEASE_ID"
    # On each database in turn, skipping those a claim before this one finished (a failure on shard 2
    # leaves shards 0 and 1 migrated; the retry goes on from shard 2). SHARD tells the script which.
    migrated=yes
    for shard in "${!hosts[@]}"; do
      finished="$(q <<<"SELECT 'yes' FROM scale_stages_release_shards WHERE release_id = :'release' AND shard = $shard;")"
      [ "$finished" = yes ] && continue
      if ! (connect "${hosts[$shard]}" "${ports[$shard]:-5432}" "${secrets[$shard]}" && SHARD="$shard" bash -eu -o pipefail "$MIGRATE_SCRIPT"); then
        migrated=no
        break
      fi
      q <<<"INSERT INTO scale_stages_release_shards VALUES (:'release', $shard) ON CONFLICT DO NOTHING;"
      [ "${#hosts[@]}" -eq 1 ] || echo "release phase: shard $shard migrated"
    done
    if [ "$migrated" = yes ]; then
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
