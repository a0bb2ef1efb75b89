# The bake of a release on a new fleet server: once its app answers the health check, the server keeps
# watching for RELEASE_BAKE_SECONDS before it tells CloudFormation that the release is good. It fails
# (exit 1: the server signals FAILURE, and the rolling update rolls the release back) when the app misses
# its health check three times in a row, or when one of RELEASE_ALARMS (the fleet's 5xx and unhealthy-host
# alarms) goes into ALARM after the bake began. An alarm already in ALARM before does not stop a release,
# which may be its fix.
# Inputs: RELEASE_BAKE_SECONDS, RELEASE_ALARMS (alarm names, space-separated), APP_HEALTH_URL, AWS_REGION.
(
set -euo pipefail
rounds=$(((${RELEASE_BAKE_SECONDS:-0} + 29) / 30))
[ "$rounds" -gt 0 ] || exit 0
began=$(date -u +%Y-%m-%dT%H:%M:%S)
echo "release bake: watching the app and its alarms for ${RELEASE_BAKE_SECONDS} s before signalling"
misses=0
for _ in $(seq 1 "$rounds"); do
  sleep 30
  if curl -fsS -o /dev/null --max-time 5 "$APP_HEALTH_URL"; then misses=0; else misses=$((misses + 1)); fi
  if [ "$misses" -ge 3 ]; then
    echo "release bake: the app missed its health check 3 times in a row; the release rolls back" >&2
    exit 1
  fi
  if [ -n "${RELEASE_ALARMS:-}" ]; then
    # shellcheck disable=SC2086 # one alarm name per word
    fired=$(aws cloudwatch describe-alarms --region "$AWS_REGION" --alarm-names $RELEASE_ALARMS --state-value ALARM \
      --query 'MetricAlarms[].[AlarmName,StateUpdatedTimestamp]' --output text)
    while read -r name since; do
      if [ -n "$name" ] && [[ ! "$since" < "$began" ]]; then
        echo "release bake: alarm $name went into ALARM at $since, during the bake; the release rolls back" >&2
        exit 1
      fi
    done <<<"$fired"
  fi
done
echo "release bake: the release stayed healthy for ${RELEASE_BAKE_SECONDS} s"
)
