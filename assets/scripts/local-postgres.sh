# Runs PostgreSQL on the box with its data directory on the data volume. The app's role and database
# are created once; the role's password is set from the Secrets Manager secret DB_SECRET_ARN at every
# boot. PostgreSQL listens on localhost only.
dnf install -y "postgresql${PG_MAJOR}-server"
pgdata="$DATA_MOUNT/pgsql/data"
install -d -o postgres -g postgres -m 700 "$DATA_MOUNT/pgsql"
mkdir -p /etc/systemd/system/postgresql.service.d
printf '[Service]\nEnvironment=PGDATA=%s\n' "$pgdata" > /etc/systemd/system/postgresql.service.d/data-volume.conf
systemctl daemon-reload
if [ ! -s "$pgdata/PG_VERSION" ]; then
  sudo -u postgres initdb -D "$pgdata" -E UTF8 --auth-local=peer --auth-host=scram-sha-256
fi
systemctl enable postgresql
systemctl restart postgresql
secret="$(aws secretsmanager get-secret-value --region "$AWS_REGION" --secret-id "$DB_SECRET_ARN" --query SecretString --output text)"
db_user="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["username"])' <<< "$secret")"
db_password="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["password"])' <<< "$secret")"
sudo -u postgres psql -v ON_ERROR_STOP=1 -v user="$db_user" -v password="$db_password" -v db="$DB_NAME" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'user') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'user') \gexec
ALTER ROLE :"user" WITH LOGIN PASSWORD :'password';
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SQL
