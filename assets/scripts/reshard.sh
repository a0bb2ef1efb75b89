#!/bin/bash
# Resharding for PostgreSQL shards (docs/resharding.md). A user's rows live on the shard that owns
# the user's bucket (sha256 of the user id, modulo 1024), in the directory scale_stages_shard_map on
# shard 0. Adding shards moves only the buckets that must move, batch by batch: mark them moving
# (servers stop writing them), wait for every server to see it, copy their rows, verify them, switch
# the map, and delete the source's rows once no server reads them there any more.
#
#   reshard.sh init                 the function scale_stages_bucket on every shard, the map on shard 0
#   reshard.sh plan --shards N      the moves that spread the buckets over shards 0..N-1
#   reshard.sh apply --shards N --tables "posts:user_id,likes:user_id"
#                                   makes those moves (finishing an interrupted run first)
#   reshard.sh status               buckets per shard, moves under way
#
# Inputs: SHARDS (libpq connection strings, one a line, shard 0 first) or else the app environment:
# DATABASE_SHARD_HOSTS, DATABASE_SHARD_PORTS and DATABASE_SHARD_SECRET_ARNS (comma-separated, shard 0
# first, as ShardedDb hands them to the app), DATABASE_NAME, AWS_REGION, DATABASE_CA_FILE (optional:
# verify the servers' certificates). SHARD_MAP_TTL_SECONDS (how long servers cache the map, default
# 10, as the demo app's shards.js), RESHARD_MARGIN_SECONDS (added to it, default 5),
# RESHARD_BATCH_BUCKETS (buckets per batch, default 64).
set -euo pipefail

BUCKETS=1024
ttl="${SHARD_MAP_TTL_SECONDS:-10}"
margin="${RESHARD_MARGIN_SECONDS:-5}"
batch_size="${RESHARD_BATCH_BUCKETS:-64}"
# Row text (the checksums) must not depend on a server's or a client's settings.
export PGTZ=UTC PGDATESTYLE=ISO PGCLIENTENCODING=UTF8 PGOPTIONS='-c client_min_messages=warning'
export PGCONNECT_TIMEOUT="${PGCONNECT_TIMEOUT:-20}"

die() {
  echo "reshard: $*" >&2
  exit 1
}
log() { echo "reshard: $*"; }
number='^[0-9]+([.][0-9]+)?$'
[[ "$ttl" =~ $number ]] || die "SHARD_MAP_TTL_SECONDS is not a number of seconds: $ttl"
[[ "$margin" =~ $number ]] || die "RESHARD_MARGIN_SECONDS is not a number of seconds: $margin"
[[ "$batch_size" =~ ^[1-9][0-9]*$ ]] || die "RESHARD_BATCH_BUCKETS is not a positive integer: $batch_size"
wait_seconds="$(awk -v a="$ttl" -v b="$margin" 'BEGIN { print a + b }')"

# A test hook: RESHARD_TEST_CRASH_AT=<point> kills this script there, as a crash would.
crash_point() {
  if [ "${RESHARD_TEST_CRASH_AT:-}" = "$1" ]; then
    echo "reshard: crashing at $1 (RESHARD_TEST_CRASH_AT)" >&2
    kill -9 $$
  fi
}

# --- Connections --------------------------------------------------------------------------------
conns=()
quote() { # a libpq connection string value
  local v="${1//\\/\\\\}"
  printf "'%s'" "${v//\'/\\\'}"
}
pass_field() { # a .pgpass field
  local v="${1//\\/\\\\}"
  printf '%s' "${v//:/\\:}"
}
load_shards() {
  if [ -n "${SHARDS:-}" ]; then
    mapfile -t conns < <(printf '%s\n' "$SHARDS" | sed -e '/^[[:space:]]*$/d')
    return
  fi
  [ -n "${DATABASE_SHARD_HOSTS:-}" ] || die "no shards: set SHARDS (connection strings, one a line) or DATABASE_SHARD_HOSTS (the app environment)"
  local host port name="${DATABASE_NAME:-app}" arn c user password sslmode="sslmode=require" i
  local -a hosts ports arns
  IFS=, read -ra hosts <<<"$DATABASE_SHARD_HOSTS"
  IFS=, read -ra ports <<<"${DATABASE_SHARD_PORTS:-}"
  IFS=, read -ra arns <<<"${DATABASE_SHARD_SECRET_ARNS:-}"
  [ "${#arns[@]}" -eq "${#hosts[@]}" ] ||
    die "DATABASE_SHARD_SECRET_ARNS names ${#arns[@]} secrets for ${#hosts[@]} shards in DATABASE_SHARD_HOSTS"
  if [ -s "${DATABASE_CA_FILE:-}" ]; then sslmode="sslmode=verify-full sslrootcert=$(quote "$DATABASE_CA_FILE")"; fi
  # The passwords go to a password file, not into psql's arguments (which every local user can see).
  PGPASSFILE="$(mktemp)"
  export PGPASSFILE
  trap 'rm -f "$PGPASSFILE"' EXIT
  for i in "${!hosts[@]}"; do
    host="${hosts[$i]}" port="${ports[$i]:-5432}" arn="${arns[$i]}"
    [ -n "$host" ] && [ -n "$arn" ] || die "shard $i has no host or secret ARN (DATABASE_SHARD_HOSTS, DATABASE_SHARD_SECRET_ARNS)"
    c="$(aws secretsmanager get-secret-value --region "${AWS_REGION:-}" --secret-id "$arn" \
      --query SecretString --output text | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["username"]); print(s["password"])')" ||
      die "cannot read the database secret $arn"
    user="${c%%$'\n'*}"
    password="${c#*$'\n'}"
    printf '%s:%s:%s:%s:%s\n' "$(pass_field "$host")" "$(pass_field "$port")" "$(pass_field "$name")" \
      "$(pass_field "$user")" "$(pass_field "$password")" >>"$PGPASSFILE"
    conns+=("host=$(quote "$host") port=$(quote "$port") dbname=$(quote "$name") user=$(quote "$user") $sslmode")
  done
}

# q SHARD [psql args]: runs the SQL on stdin on that shard; unaligned, tuples only.
q() {
  local shard="$1"
  shift
  psql -XqAt -v ON_ERROR_STOP=1 -d "${conns[$shard]}" "$@"
}

require_shards() { # require_shards N
  [ "${#conns[@]}" -ge "$1" ] || die "--shards $1 needs $1 connection strings, but there are ${#conns[@]} (SHARDS or DATABASE_SHARD_HOSTS, shard 0 first)"
}

# --- Schema ---------------------------------------------------------------------------------------
# The bucket of a user id, as shards.js computes it: the first 4 bytes of sha256(utf8(id)), read as a
# big-endian unsigned integer, modulo 1024. IMMUTABLE, so tables can index it. Created when missing
# (an existing one may belong to another role, and indexes may use it).
create_function() { # on one shard
  q "$1" <<'SQL'
SELECT to_regprocedure('scale_stages_bucket(text)') IS NULL AS missing \gset
\if :missing
CREATE FUNCTION scale_stages_bucket(user_id text) RETURNS int
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN (('x' || substr(encode(sha256(convert_to(user_id, 'UTF8')), 'hex'), 1, 8))::bit(32)::bigint % 1024)::int;
\endif
SQL
}

create_map() {
  q 0 <<'SQL'
BEGIN;
SELECT pg_advisory_xact_lock(hashtext('scale_stages_shard_map')) \gset
CREATE TABLE IF NOT EXISTS scale_stages_shard_map (
  bucket smallint PRIMARY KEY CHECK (bucket BETWEEN 0 AND 1023),
  shard smallint NOT NULL,
  moving boolean NOT NULL DEFAULT false,
  moved_at timestamptz);
-- A new map has every bucket on shard 0, where all data is; an existing map stays as it is.
INSERT INTO scale_stages_shard_map (bucket, shard)
SELECT b, 0 FROM generate_series(0, 1023) b
WHERE NOT EXISTS (SELECT 1 FROM scale_stages_shard_map);
-- The journal of moves under way: what an interrupted apply must finish.
CREATE TABLE IF NOT EXISTS scale_stages_reshard_moves (
  bucket smallint PRIMARY KEY REFERENCES scale_stages_shard_map,
  source smallint NOT NULL,
  target smallint NOT NULL,
  step text NOT NULL CHECK (step IN ('copying', 'switched')),
  at timestamptz NOT NULL DEFAULT now());
COMMIT;
SQL
}

require_map() {
  [ "$(q 0 <<<"SELECT to_regclass('scale_stages_reshard_moves') IS NOT NULL")" = t ] ||
    die "there is no shard map on shard 0: run init first"
  [ "$(q 0 <<<"SELECT count(*) FROM scale_stages_shard_map")" = "$BUCKETS" ] ||
    die "the shard map on shard 0 does not have one row for each of the $BUCKETS buckets"
}

# The number of shards the map uses (the highest shard that owns a bucket, plus one).
current_shards() { q 0 <<<"SELECT max(shard) + 1 FROM scale_stages_shard_map"; }

check_target() { # check_target N: a valid shard count for this map and these connections
  [[ "$1" =~ ^[1-9][0-9]*$ ]] && [ "$1" -le "$BUCKETS" ] || die "--shards must be a number from 1 to $BUCKETS, not '$1'"
  local now
  now="$(current_shards)"
  [ "$1" -ge "$now" ] || die "--shards $1 is below the current shard count $now: shrinking is not supported"
  require_shards "$1"
  local shard
  for ((shard = 1; shard < $1; shard++)); do
    q "$shard" <<<"SELECT 1" >/dev/null || die "cannot connect to shard $shard (see psql's error above)"
  done
}

# --- The plan -----------------------------------------------------------------------------------
# Each shard ends with 1024/N buckets, the fullest ones with one more when N does not divide 1024;
# the shards above that give their highest buckets to those below it, fullest to emptiest. Moves
# are rows "bucket|source|target", in order.
plan_moves() { # plan_moves N
  q 0 -v n="$1" <<'SQL'
WITH counts AS (
  SELECT s AS shard, count(m.bucket) AS have
  FROM generate_series(0, :n - 1) s LEFT JOIN scale_stages_shard_map m ON m.shard = s GROUP BY s),
ranked AS (
  SELECT shard, have, 1024 / :n + CASE WHEN row_number() OVER (ORDER BY have DESC, shard) <= 1024 % :n
    THEN 1 ELSE 0 END AS want,
  row_number() OVER (ORDER BY have DESC, shard) AS fullest, row_number() OVER (ORDER BY have, shard) AS emptiest
  FROM counts),
given AS (
  SELECT m.bucket, m.shard AS source,
    row_number() OVER (ORDER BY r.fullest, m.bucket DESC) AS k
  FROM (SELECT bucket, shard, row_number() OVER (PARTITION BY shard ORDER BY bucket DESC) AS i
        FROM scale_stages_shard_map) m
  JOIN ranked r ON r.shard = m.shard
  WHERE m.i <= r.have - r.want),
slots AS (
  SELECT r.shard AS target, row_number() OVER (ORDER BY r.emptiest, g) AS k
  FROM ranked r, generate_series(1, greatest(r.want - r.have, 0)) g)
SELECT g.bucket, g.source, s.target FROM given g JOIN slots s USING (k)
ORDER BY min(g.k) OVER (PARTITION BY g.source, s.target), g.bucket;
SQL
}

# Bucket lists as ranges: 1,2,3,7 -> 1-3,7
ranges() {
  awk -F, '{ out = ""; start = prev = "";
    for (i = 1; i <= NF; i++) {
      if (prev != "" && $i == prev + 1) { prev = $i; continue }
      if (start != "") out = out (out == "" ? "" : ",") (start == prev ? start : start "-" prev)
      start = prev = $i
    }
    if (start != "") out = out (out == "" ? "" : ",") (start == prev ? start : start "-" prev)
    print out }'
}

show_plan() { # show_plan N
  local moves
  moves="$(plan_moves "$1")"
  q 0 -v n="$1" <<'SQL'
SELECT 'plan: ' || 1024 || ' buckets over ' || :n || ' shards; now ' ||
  string_agg('shard ' || s || ' ' || (SELECT count(*) FROM scale_stages_shard_map WHERE shard = s), ', ' ORDER BY s)
FROM generate_series(0, :n - 1) s;
SQL
  if [ -n "$(journal copying)$(journal switched)" ]; then
    log "an interrupted apply left moves under way (see status); the next apply finishes them first"
  fi
  if [ -z "$moves" ]; then
    log "plan: nothing to move"
    return
  fi
  local source target buckets
  while IFS='|' read -r source target buckets; do
    log "move $(awk -F, '{ print NF }' <<<"$buckets") buckets from shard $source to shard $target: $(ranges <<<"$buckets")"
  done < <(awk -F'|' '{ k = $2 "|" $3; if (!(k in seen)) { seen[k] = 1; order[++n] = k }; list[k] = list[k] (list[k] == "" ? "" : ",") $1 }
    END { for (i = 1; i <= n; i++) print order[i] "|" list[order[i]] }' <<<"$moves")
  log "plan: $(wc -l <<<"$moves") buckets move"
}

# --- Moving buckets -------------------------------------------------------------------------------
tables=()
keys=()
parse_tables() { # "posts:user_id,likes:user_id"
  local spec table key ident='^[a-z_][a-z0-9_]*$'
  [ -n "$1" ] || die "apply needs --tables \"table:user_id_column,...\" (every sharded table)"
  IFS=, read -ra specs <<<"$1"
  for spec in "${specs[@]}"; do
    table="${spec%%:*}"
    key="${spec#*:}"
    [[ "$spec" == *:* && "$table" =~ $ident && "$key" =~ $ident ]] ||
      die "--tables takes table:column pairs (plain lowercase names), not '$spec'"
    tables+=("$table")
    keys+=("$key")
  done
}

columns() { # columns SHARD TABLE: its column names (not generated ones), quoted, comma-separated, by name
  q "$1" -v t="$2" <<'SQL'
SELECT string_agg(quote_ident(attname), ',' ORDER BY attname) FROM pg_attribute
WHERE attrelid = to_regclass(:'t') AND attnum > 0 AND NOT attisdropped AND attgenerated = '';
SQL
}

check_tables() { # check_tables N: every table, with the same columns, on shards 0..N-1
  local shard i cols0 cols
  for i in "${!tables[@]}"; do
    cols0="$(columns 0 "${tables[$i]}")"
    [ -n "$cols0" ] || die "table ${tables[$i]} does not exist on shard 0"
    [[ ",$cols0," == *",${keys[$i]},"* ]] || die "table ${tables[$i]} has no column ${keys[$i]} on shard 0"
    for ((shard = 1; shard < $1; shard++)); do
      cols="$(columns "$shard" "${tables[$i]}")"
      [ -n "$cols" ] || die "table ${tables[$i]} does not exist on shard $shard: run the app's migrations there first"
      [ "$cols" = "$cols0" ] || die "table ${tables[$i]} has columns ($cols) on shard $shard but ($cols0) on shard 0"
    done
  done
}

delete_rows() { # delete_rows SHARD BUCKETS(csv): that shard's rows of those buckets, in every table
  local i
  # In reverse order: --tables lists tables that others reference first, and copies in that order.
  for ((i = ${#tables[@]} - 1; i >= 0; i--)); do
    q "$1" -v b="{$2}" <<<"DELETE FROM ${tables[$i]} WHERE scale_stages_bucket(${keys[$i]}) = ANY (:'b'::int[]);"
  done
}

checksum() { # checksum SHARD TABLE KEY COLS BUCKETS: "rows|sum of 64-bit row hashes", order-independent
  q "$1" -v b="{$5}" <<SQL
SELECT count(*) || '|' || coalesce(sum(('x' || substr(md5(r::text), 1, 16))::bit(64)::bigint::numeric), 0)
FROM (SELECT $4 FROM $2 WHERE scale_stages_bucket($3) = ANY (:'b'::int[])) r;
SQL
}

# Journal rows "source|target|buckets" of moves in a step.
journal() { # journal STEP [older than the wait]
  local cond="true"
  [ -z "${2:-}" ] || cond="at <= now() - make_interval(secs => $wait_seconds)"
  q 0 -v step="$1" <<SQL
SELECT source || '|' || target || '|' || string_agg(bucket::text, ',' ORDER BY bucket)
FROM scale_stages_reshard_moves WHERE step = :'step' AND $cond GROUP BY source, target ORDER BY source, target;
SQL
}

# Deletes the source's rows of switched buckets, once every server has seen the switch (all of them
# with "wait", else only those switched at least the wait ago).
clean_up() { # clean_up [wait]
  local left source target buckets
  if [ -n "${1:-}" ]; then
    left="$(q 0 <<<"SELECT coalesce(extract(epoch FROM max(at) + make_interval(secs => $wait_seconds) - now()), 0) FROM scale_stages_reshard_moves WHERE step = 'switched'")"
    if awk -v s="$left" 'BEGIN { exit !(s > 0) }'; then
      log "waiting ${left%.*}s for every server to see the last switch before deleting the source's rows"
      sleep "$left"
    fi
  fi
  while IFS='|' read -r source target buckets; do
    [ -n "$buckets" ] || continue
    crash_point cleanup
    delete_rows "$source" "$buckets"
    q 0 -v b="{$buckets}" <<<"DELETE FROM scale_stages_reshard_moves WHERE step = 'switched' AND bucket = ANY (:'b'::int[]);"
    log "deleted the rows of buckets $(ranges <<<"$buckets") from shard $source (now on shard $target)"
  done < <(journal switched older)
}

batch_no=0
move_batch() { # move_batch SOURCE TARGET BUCKETS(csv)
  local source="$1" target="$2" buckets="$3" i cols a b label t0
  batch_no=$((batch_no + 1))
  label="batch $batch_no (buckets $(ranges <<<"$buckets"), shard $source to shard $target)"
  # 1. Mark them moving: servers stop writing them (and still read them on the source).
  q 0 -v b="{$buckets}" -v s="$source" -v t="$target" <<'SQL'
BEGIN;
INSERT INTO scale_stages_reshard_moves (bucket, source, target, step)
SELECT b, :s, :t, 'copying' FROM unnest(:'b'::int[]) b ON CONFLICT (bucket) DO NOTHING;
UPDATE scale_stages_shard_map SET moving = true WHERE bucket = ANY (:'b'::int[]) AND shard = :s;
COMMIT;
SQL
  t0="$(date +%s.%N)"
  # 2. Wait until every server has re-read the map; meanwhile, earlier batches' switches got old
  # enough to delete their source rows.
  sleep "$wait_seconds"
  clean_up
  # 3. Copy, over whatever an earlier, interrupted run left on the target.
  delete_rows "$target" "$buckets"
  for i in "${!tables[@]}"; do
    cols="$(columns "$source" "${tables[$i]}")"
    q "$source" <<<"\\copy (SELECT $cols FROM ${tables[$i]} WHERE scale_stages_bucket(${keys[$i]}) = ANY ('{$buckets}'::int[])) TO pstdout" |
      q "$target" -c "\\copy ${tables[$i]} ($cols) FROM pstdin"
    crash_point copy
  done
  # 4. Verify: the same rows on both sides, else undo.
  for i in "${!tables[@]}"; do
    cols="$(columns "$source" "${tables[$i]}")"
    a="$(checksum "$source" "${tables[$i]}" "${keys[$i]}" "$cols" "$buckets")"
    b="$(checksum "$target" "${tables[$i]}" "${keys[$i]}" "$cols" "$buckets")"
    if [ "$a" != "$b" ]; then
      delete_rows "$target" "$buckets"
      q 0 -v b="{$buckets}" <<'SQL'
BEGIN;
UPDATE scale_stages_shard_map SET moving = false WHERE bucket = ANY (:'b'::int[]);
DELETE FROM scale_stages_reshard_moves WHERE bucket = ANY (:'b'::int[]);
COMMIT;
SQL
      clean_up wait
      die "table ${tables[$i]} differs after the copy of $label: source ${a%%|*} rows, target ${b%%|*} rows, checksums ${a#*|} and ${b#*|}; deleted the copies, the buckets stay on shard $source"
    fi
  done
  crash_point switch
  # 5. Switch. Servers with the old map still read the source, which keeps the rows until clean_up.
  q 0 -v b="{$buckets}" -v s="$source" -v t="$target" <<'SQL'
BEGIN;
UPDATE scale_stages_shard_map SET shard = :t, moving = false, moved_at = now()
WHERE bucket = ANY (:'b'::int[]) AND shard = :s;
UPDATE scale_stages_reshard_moves SET step = 'switched', at = now() WHERE bucket = ANY (:'b'::int[]);
COMMIT;
SQL
  log "$label: moved $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')s after marking them moving (writes to them pause that long, plus up to ${ttl}s until every server sees the switch)"
}

move_all() { # move_all "source|target|bucket,bucket,..." lines, in batches
  local source target buckets batch i
  local -a list
  while IFS='|' read -r source target buckets; do
    [ -n "$buckets" ] || continue
    IFS=, read -ra list <<<"$buckets"
    for ((i = 0; i < ${#list[@]}; i += batch_size)); do
      batch="$(IFS=,; echo "${list[*]:i:batch_size}")"
      move_batch "$source" "$target" "$batch"
    done
  done
}

# One apply at a time: a session on shard 0 holds an advisory lock while this script runs (the
# session ends, and the lock with it, when this script does, however it ends).
lock() {
  coproc LOCKER { psql -XqAt -d "${conns[0]}" 2>/dev/null; }
  echo "SELECT pg_try_advisory_lock(hashtext('scale_stages_reshard'));" >&"${LOCKER[1]}"
  local got=""
  read -r got <&"${LOCKER[0]}" || true
  [ "$got" = t ] || die "another reshard apply is running (it holds the lock on shard 0), or shard 0 is unreachable"
}

apply() { # apply N
  local n="$1" pending moves
  require_map
  check_target "$n"
  check_tables "$n"
  lock
  for ((shard = 0; shard < n; shard++)); do create_function "$shard"; done
  # Finish what an interrupted run left: moves it had started copying, then switched moves.
  pending="$(journal copying)"
  if [ -n "$pending" ]; then
    log "resuming the moves an interrupted run started"
    move_all <<<"$pending"
  fi
  moves="$(plan_moves "$n" | awk -F'|' '{ k = $2 "|" $3; if (!(k in seen)) { seen[k] = 1; order[++m] = k }; list[k] = list[k] (list[k] == "" ? "" : ",") $1 }
    END { for (i = 1; i <= m; i++) print order[i] "|" list[order[i]] }')"
  [ -z "$moves" ] || move_all <<<"$moves"
  clean_up wait
  status
}

status() {
  q 0 <<'SQL'
SELECT 'shard ' || shard || ': ' || count(*) || ' buckets' || coalesce(', ' || nullif(count(*) FILTER (WHERE moving), 0) || ' moving', '')
FROM scale_stages_shard_map GROUP BY shard ORDER BY shard;
SELECT 'moves under way: ' || coalesce(string_agg(n || ' buckets ' || step || ' from shard ' || source || ' to shard ' || target, '; '), 'none')
FROM (SELECT step, source, target, count(*) AS n FROM scale_stages_reshard_moves GROUP BY 1, 2, 3) j;
SQL
}

# --- Main ---------------------------------------------------------------------------------------
command="${1:-}"
[ $# -eq 0 ] || shift
shards=""
table_spec=""
while [ $# -gt 0 ]; do
  case "$1" in
    --shards) shards="${2:-}" && shift 2 || die "--shards needs a number" ;;
    --tables) table_spec="${2:-}" && shift 2 || die "--tables needs a list" ;;
    *) die "unknown argument: $1" ;;
  esac
done
case "$command" in
  init | plan | apply | status) ;;
  *) die "usage: reshard.sh init | plan --shards N | apply --shards N --tables \"table:user_id,...\" | status" ;;
esac
load_shards
[ "${#conns[@]}" -gt 0 ] || die "no shards: SHARDS is empty"
case "$command" in
  init)
    for shard in "${!conns[@]}"; do create_function "$shard"; done
    create_map
    log "the bucket function is on ${#conns[@]} shard(s), the shard map on shard 0"
    status
    ;;
  plan)
    [ -n "$shards" ] || die "plan needs --shards N"
    require_map
    check_target "$shards"
    show_plan "$shards"
    ;;
  apply)
    [ -n "$shards" ] || die "apply needs --shards N"
    parse_tables "$table_spec"
    apply "$shards"
    ;;
  status)
    require_map
    status
    ;;
esac
