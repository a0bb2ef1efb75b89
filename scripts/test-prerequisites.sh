#!/usr/bin/env bash
# Makes sure the programs the test suite runs for real are on this machine, before `npm test`:
# redis-server and openssl (the demo app's cache tests, TLS and AUTH like ElastiCache) and the
# shell linter (every server script is linted with shellcheck); python3 and unshare for the boot
# tests, which run the servers' user data in a sandbox; psql for the stage-1 rotation scripts' tests; Debian's PostgreSQL 15 server
# (a path: `command -v` checks it too), the stage-1 server of the stage 1 -> 10 migration tests. On Debian as root it installs what is missing with
# apt-get; anywhere else it stops and says what to install. Tests never skip for a missing tool.
# AWS's CloudFormation linter cfn-lint (1.x, a Python tool on PyPI, not in Debian 12 at that version) lints
# every stage's templates: it is installed with pip where it is missing, or the script stops and says how.
set -euo pipefail

cfn_lint_major() { cfn-lint --version 2>/dev/null | sed -n 's/^cfn-lint \([0-9]*\)\..*/\1/p'; }
if [ "$(cfn_lint_major)" = "" ] || [ "$(cfn_lint_major)" -lt 1 ]; then
  echo "Installing AWS's CloudFormation linter with pip: cfn-lint>=1.51,<2"
  if ! python3 -m pip install --quiet 'cfn-lint>=1.51,<2' || [ "$(cfn_lint_major)" = "" ]; then
    echo "npm test needs cfn-lint 1.x (AWS's CloudFormation linter) on the PATH; install it with 'pipx install cfn-lint' or 'python3 -m pip install cfn-lint' (see https://github.com/aws-cloudformation/cfn-lint) and run npm test again." >&2
    exit 1
  fi
fi

declare -A package_of=([redis-server]='redis-server redis-tools' [openssl]=openssl [shellcheck]=shellcheck [python3]=python3 [unshare]=util-linux [psql]=postgresql-client [/usr/lib/postgresql/15/bin/postgres]=postgresql-15)
missing=()
for tool in "${!package_of[@]}"; do
  # Word splitting is wanted: a tool can need several packages.
  # shellcheck disable=SC2206
  command -v "$tool" >/dev/null 2>&1 || missing+=(${package_of[$tool]})
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "npm test needs ${missing[*]}; install them (Debian/Ubuntu: sudo apt-get install -y ${missing[*]}; macOS: brew install ${missing[*]}) and run npm test again." >&2
  exit 1
fi
echo "Installing test prerequisites with apt-get: ${missing[*]}"
log="$(mktemp)"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
  # A fresh machine has no package lists yet.
  if ! { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; } >>"$log" 2>&1; then
    cat "$log" >&2
    echo "could not install ${missing[*]} with apt-get (log above); install them and run npm test again." >&2
    exit 1
  fi
fi
rm -f "$log"
