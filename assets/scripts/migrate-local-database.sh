# Stage 10+: moves the stage-1 database from the data volume into RDS, once, before the app starts.
# Later boots find the marker on the volume (or in RDS) and only keep the local PostgreSQL stopped.
# It refuses (exit 1, one line on stderr) if RDS holds tables, sequences or large objects that did
# not come from this volume. A boot that dies leaves RDS empty (the restore is one transaction) or
# marked in-progress for this volume: the next boot drops what the restore made (--clean) and redoes
# it; 'done' is written only after the row counts, sequences and large objects match.
# Inputs: DATA_MOUNT, DATA_VOLUME_ID, AWS_REGION, PG_MAJOR, DATABASE_HOST/PORT/NAME/SECRET_ARN,
# DATABASE_CA_FILE (optional; without it TLS is required but the server is not verified).
# Tools are PG_MAJOR's: pg_dump reads its own major or older, its archive restores into newer.
# It runs in a subshell, so `exit` ends only this step.
# Tests (no systemd or sudo) set LOCAL_PG_START, LOCAL_PG_STOP, LOCAL_PSQL_AS_ADMIN, LOCAL_PG_DUMP
# and PGHOST/PGPORT, which reach only the local server (RDS gets a full connection string).
(
set -euo pipefail
d="$DATA_MOUNT/pgsql" src="$DATA_VOLUME_ID" db="${DATABASE_NAME:-app}"
stop_local() {
  rm -f "$d/migration.dump"
  if [ -n "${LOCAL_PG_STOP:-}" ]; then eval "$LOCAL_PG_STOP"
  elif systemctl list-unit-files postgresql.service >/dev/null 2>&1; then systemctl disable --now postgresql; fi
}
trap stop_local EXIT
if [ ! -s "$d/data/PG_VERSION" ] || [ -e "$d/migrated-to-rds" ]; then exit 0; fi
echo "migrate-local-database: moving database $db from volume $src into RDS"
if [ -n "${LOCAL_PG_START:-}" ]; then eval "$LOCAL_PG_START"; else
  dnf install -y -q "postgresql${PG_MAJOR:-16}-server"
  mkdir -p /etc/systemd/system/postgresql.service.d
  printf '[Service]\nEnvironment=PGDATA=%s\n' "$d/data" >/etc/systemd/system/postgresql.service.d/data-volume.conf
  systemctl daemon-reload
  systemctl start postgresql
fi
read -ra lpsql <<<"${LOCAL_PSQL_AS_ADMIN:-sudo -u postgres psql}"
read -ra ldump <<<"${LOCAL_PG_DUMP:-sudo -u postgres pg_dump}"
c="$(aws secretsmanager get-secret-value --region "$AWS_REGION" --secret-id "$DATABASE_SECRET_ARN" --query SecretString \
  --output text | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["username"]); print(s["password"])')"
export PGPASSWORD="${c#*$'\n'}"
ssl=require
if [ -s "${DATABASE_CA_FILE:-}" ]; then ssl="verify-full sslrootcert=$DATABASE_CA_FILE"; fi
rds="host=$DATABASE_HOST port=${DATABASE_PORT:-5432} dbname=$db user=${c%%$'\n'*} connect_timeout=20 sslmode=$ssl"
rsql() { PGOPTIONS='-c client_min_messages=warning' psql -XqAt -v ON_ERROR_STOP=1 -v src="$src" -d "$rds" "$@"; }
t=public.scale_stages_migration
# This volume's state in RDS, then the count of other user objects there.
s="$(rsql <<SQL
SELECT to_regclass('$t') IS NOT NULL AS m \gset
\if :m
SELECT coalesce(max(state), '-') FROM $t WHERE source = :'src';
\else
SELECT '-';
\endif
SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = relnamespace WHERE relkind IN
('r','p','S','v','m','f') AND nspname !~ '^(pg_|information_schema$)' AND c.oid <> coalesce(to_regclass('$t'), 0))
+ (SELECT count(*) FROM pg_largeobject_metadata);
SQL
)"
if [ "${s%%$'\n'*}" != 'done' ]; then
  if [ "${s%%$'\n'*}" != in-progress ] && [ "${s#*$'\n'}" != 0 ]; then
    echo "migrate-local-database: REFUSED: RDS database $db already holds data that did not come from volume $src; nothing was copied. See the README section 'If the automatic migration refused'." >&2
    exit 1
  fi
  rsql <<SQL
CREATE TABLE IF NOT EXISTS $t (source text PRIMARY KEY, state text NOT NULL, at timestamptz NOT NULL);
INSERT INTO $t VALUES (:'src', 'in-progress', now()) ON CONFLICT (source) DO UPDATE SET state = 'in-progress', at = now();
SQL
  env -u PGPASSWORD "${ldump[@]}" -Fc -d "$db" >"$d/migration.dump"
  pg_restore --single-transaction --no-owner --no-privileges --exit-on-error --clean --if-exists -d "$rds" "$d/migration.dump"
  # Rows per table, sequence values and large objects, on both sides.
  q="SELECT format('%I.%I', schemaname, tablename), query_to_xml(format('SELECT count(*) FROM %I.%I', schemaname, tablename), false, true, '')::text
FROM pg_tables WHERE schemaname !~ '^(pg_|information_schema$)' AND tablename <> 'scale_stages_migration' UNION ALL
SELECT format('%I.%I', schemaname, sequencename), last_value::text FROM pg_sequences UNION ALL
SELECT 'large objects', count(*)::text FROM pg_largeobject_metadata ORDER BY 1"
  if [ "$(env -u PGPASSWORD "${lpsql[@]}" -XAt -d "$db" -c "$q")" != "$(rsql -c "$q")" ]; then
    echo "migrate-local-database: the copy in RDS does not match database $db; the next boot redoes it" >&2
    exit 1
  fi
  rsql <<<"UPDATE $t SET state = 'done', at = now() WHERE source = :'src';"
fi
touch "$d/migrated-to-rds"
echo "migrate-local-database: database $db is in RDS"
)
