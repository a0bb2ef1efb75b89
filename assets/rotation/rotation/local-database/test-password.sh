#!/bin/bash
# testSecret of the stage-1 local database rotation (index.js in this folder). The rotation function
# sends this script to the SingleServer with SSM Run Command (document AWS-RunShellScript). It logs
# in as the app does, over TCP to 127.0.0.1 with a scram-sha-256 password (the `host` line that
# initdb --auth-host=scram-sha-256 writes), with the password of the secret's AWSPENDING version,
# which it reads from Secrets Manager itself: the password never travels in the command's
# parameters, and nothing here prints it. It exits non-zero when the login fails.
#
# Environment (the rotation function sets it in front of the script): AWS_REGION, DB_SECRET_ARN,
# SECRET_VERSION_ID (the id of the AWSPENDING version), DB_NAME. psql's own PGPORT, if set, picks
# the port (tests use it; on the server PostgreSQL listens on 5432, psql's default).
set -euo pipefail
: "${AWS_REGION:?}" "${DB_SECRET_ARN:?}" "${SECRET_VERSION_ID:?}" "${DB_NAME:?}"

secret="$(aws secretsmanager get-secret-value --region "$AWS_REGION" --secret-id "$DB_SECRET_ARN" \
  --version-id "$SECRET_VERSION_ID" --version-stage AWSPENDING --query SecretString --output text)"
# The JSON goes to python3 on stdin, never on a command line that `ps` shows.
db_user="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["username"])' <<< "$secret")"
db_password="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["password"])' <<< "$secret")"
unset secret

# PGPASSWORD is given to psql alone, not exported to this shell. On Linux a process's environment
# (/proc/<pid>/environ) is readable by its owner and root only. -w: never prompt for a password.
if ! PGPASSWORD="$db_password" PGCONNECT_TIMEOUT=10 psql -X -q -w -h 127.0.0.1 -U "$db_user" -d "$DB_NAME" \
  -c 'select 1' >/dev/null; then
  echo "role ${db_user} cannot log in to database ${DB_NAME} on 127.0.0.1 with secret version ${SECRET_VERSION_ID}" >&2
  exit 1
fi
echo "role ${db_user} logs in to database ${DB_NAME} on 127.0.0.1 with secret version ${SECRET_VERSION_ID}"
