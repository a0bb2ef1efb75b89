#!/bin/bash
# Applies the release in the instance's metadata (key ScaleStagesRelease: id, waitHandle, script) without
# restarting the machine: at every boot (apply-release.sh boot) and, through cfn-hup, whenever a stack
# update changes that metadata (apply-release.sh hook). The script writes the app's environment, runs the
# release phase and the start commands, and waits for the app's health check. Healthy: the release's wait
# condition gets SUCCESS and the deploy goes on. Not healthy: the wait condition gets FAILURE, so the
# deploy fails and rolls back; a hook starts the previous release again first, so that it serves.
# A boot's exit status is the release's; a hook always exits 0, so that cfn-hup records the metadata and
# runs the hook again when the rollback brings the previous metadata back.
# Inputs: STACK, RESOURCE, AWS_REGION; RELEASE_DIR (default /opt/scale-stages/release).
set -euo pipefail
mode=${1:-boot}
dir=${RELEASE_DIR:-/opt/scale-stages/release}
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
meta="$(/opt/aws/bin/cfn-get-metadata --region "$AWS_REGION" -s "$STACK" -r "$RESOURCE" -k ScaleStagesRelease)"
field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1" <<<"$meta"; }
id="$(field id)"
handle="$(field waitHandle)"
field script >"$dir/$id.sh"
previous="$(cat "$dir/current" 2>/dev/null || true)"
if bash "$dir/$id.sh"; then
  echo "$id" >"$dir/current"
  /opt/aws/bin/cfn-signal -e 0 -i "$id" -r "release $id is healthy" "$handle"
  exit 0
fi
echo "apply-release: release $id did not become healthy" >&2
reason="release $id did not become healthy"
# A hook swaps releases on a running machine, so the previous one goes back. A boot may follow a change of
# the machine itself (a stage upgrade), which the previous release does not fit; it only fails.
if [ "$mode" = hook ] && [ -n "$previous" ] && [ "$previous" != "$id" ] && [ -f "$dir/$previous.sh" ]; then
  if bash "$dir/$previous.sh"; then reason="$reason; release $previous serves again"; else
    reason="$reason, and release $previous did not start again"
  fi
fi
echo "apply-release: $reason" >&2
/opt/aws/bin/cfn-signal -e 1 -i "$id" -r "$reason" "$handle" || true
[ "$mode" = hook ] && exit 0
exit 1
