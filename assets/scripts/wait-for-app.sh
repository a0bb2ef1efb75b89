# Waits up to 5 minutes for the app to answer APP_HEALTH_URL with a success status.
for _ in $(seq 1 60); do
  if curl -fsS -o /dev/null --max-time 5 "$APP_HEALTH_URL"; then
    exit 0
  fi
  sleep 5
done
echo "the app did not answer $APP_HEALTH_URL within 5 minutes" >&2
exit 1
