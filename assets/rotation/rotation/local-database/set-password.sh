#!/bin/bash
# setSecret of the stage-1 local database rotation (index.js in this folder). The rotation function
# sends this script to the SingleServer with SSM Run Command (document AWS-RunShellScript), which
# runs it as root. It sets the password of the app role in the local PostgreSQL to the one in the
# secret's AWSPENDING version, which it reads from Secrets Manager itself with the instance role:
# the password never travels in the command's parameters, and nothing here prints it.
#
# Environment (the rotation function sets it in front of the script): AWS_REGION, DB_SECRET_ARN,
# SECRET_VERSION_ID (the rotation's ClientRequestToken, the id of the AWSPENDING version).
# ADMIN_PSQL is how a superuser psql is started: by default `sudo -u postgres psql`, peer
# authentication on the Unix socket (initdb --auth-local=peer in assets/scripts/local-postgres.sh).
# Tests set it to a psql that reaches their own PostgreSQL, because `sudo -u postgres` is not there.
#
# Running it twice with the same version sets the same password twice, so a retried setSecret is
# harmless. At every boot assets/scripts/local-postgres.sh sets the password from AWSCURRENT again.
set -euo pipefail
: "${AWS_REGION:?}" "${DB_SECRET_ARN:?}" "${SECRET_VERSION_ID:?}"
# Word splitting is wanted: ADMIN_PSQL is a command with its arguments.
read -r -a admin_psql <<< "${ADMIN_PSQL:-sudo -u postgres psql}"

secret="$(aws secretsmanager get-secret-value --region "$AWS_REGION" --secret-id "$DB_SECRET_ARN" \
  --version-id "$SECRET_VERSION_ID" --version-stage AWSPENDING --query SecretString --output text)"
# The JSON goes to python3 on stdin, never on a command line that `ps` shows.
db_user="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["username"])' <<< "$secret")"
db_password="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["password"])' <<< "$secret")"
unset secret
if [ -z "$db_user" ] || [ -z "$db_password" ] || [[ "$db_password" == *$'\n'* ]]; then
  echo "version $SECRET_VERSION_ID of the secret has no username, or no one-line password" >&2
  exit 1
fi

# The password reaches psql on stdin (a here-document), not as an argument. In a psql
# single-quoted argument a backslash escapes the next character and '' is one quote; `:'password'`
# then quotes it as a SQL literal. This session neither logs statements nor, when one fails, logs
# the failing statement (log_min_error_statement), so the password stays out of the server log too.
escaped="${db_password//\\/\\\\}"
escaped="${escaped//\'/\'\'}"
"${admin_psql[@]}" -X -q -v ON_ERROR_STOP=1 -v VERBOSITY=terse -d postgres -v user="$db_user" <<SQL
SET log_statement = 'none';
SET log_min_error_statement = 'panic';
\\set password '${escaped}'
ALTER ROLE :"user" WITH PASSWORD :'password';
SQL
echo "the password of role ${db_user} is the one of secret version ${SECRET_VERSION_ID} (AWSPENDING)"
