#!/bin/sh
# The database and its three roles, as SECURITY.md prescribes (run by the postgres image's
# entrypoint on an empty data directory, as the superuser; safe to run again, which the
# restore runbook in deploy/README.md does):
#
#   DB_OWNER_ROLE   owns the database and the schema; runs `referrals db upgrade` and
#                   `referrals db harden` (the migrate service), never the app
#   DB_APP_ROLE     the app and the workers: SELECT/INSERT/UPDATE/DELETE on the tables the
#                   owner creates, then `db harden` takes back what the audit trail forbids
#   DB_SEALER_ROLE  the sealer: nothing here; `db harden` grants it the audit tables only
#
# Passwords come from files (Compose secrets).  The smoke test (tests/ops) runs this same
# script against a local server with other names.
set -eu

secrets=${DB_SECRETS_DIR:-/run/secrets}
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
  -v db="${DB_NAME:-referrals}" \
  -v owner="${DB_OWNER_ROLE:-referrals_owner}" \
  -v app="${DB_APP_ROLE:-referrals_app}" \
  -v sealer="${DB_SEALER_ROLE:-referrals_sealer}" \
  -v owner_password="$(cat "$secrets/db-owner-password")" \
  -v app_password="$(cat "$secrets/db-app-password")" \
  -v sealer_password="$(cat "$secrets/db-sealer-password")" <<'SQL'
-- Idempotent: a restore runs it again on a server that may already have the roles.
SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L', r, p)
  FROM (VALUES (:'owner', :'owner_password'), (:'app', :'app_password'),
               (:'sealer', :'sealer_password')) AS wanted(r, p)
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'owner')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO :"app", :"sealer";
\connect :"db"
ALTER SCHEMA public OWNER TO :"owner";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"app", :"sealer";
-- What the owner's migrations create, the app may use; `db harden` then takes UPDATE and
-- DELETE on the audit tables back, and gives the sealer its own.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT USAGE, SELECT ON SEQUENCES TO :"app";
SQL
