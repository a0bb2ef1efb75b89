# The database now lives in RDS: stop the local PostgreSQL for good. Its data stays on the data volume
# until the migration runbook in the README has copied it to RDS.
if systemctl list-unit-files postgresql.service >/dev/null 2>&1; then
  systemctl disable --now postgresql || true
fi
