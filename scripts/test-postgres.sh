#!/usr/bin/env bash
# Starts a local PostgreSQL (installing Debian's package if needed) and prints an admin URL for
# the test suite: each test cloud creates and drops its own database through it.
#   export STRATUS_TEST_DATABASE=$(scripts/test-postgres.sh)
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | awk '{print $1"/"$2}' | grep -q "^$ver/main$"; then
  pg_createcluster "$ver" main >/dev/null
fi
pg_ctlcluster "$ver" main start >/dev/null 2>&1 || true
port=$(pg_lsclusters -h | awk -v v="$ver" '$1==v && $2=="main" {print $3}')
for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p "$port" && break; sleep 1; done
# One generated password per machine, kept root-only, so concurrent runs agree on it.
pwfile=/root/.stratus-test-pg-password
[[ -s $pwfile ]] || (umask 077; head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$pwfile")
pw=$(cat "$pwfile")
cd /tmp
if su postgres -c "psql -p $port -tAc \"SELECT 1 FROM pg_roles WHERE rolname='stratus_ci'\"" | grep -q 1; then
  su postgres -c "psql -p $port -q -c \"ALTER ROLE stratus_ci LOGIN CREATEDB PASSWORD '$pw'\"" >&2
else
  su postgres -c "psql -p $port -q -c \"CREATE ROLE stratus_ci LOGIN CREATEDB PASSWORD '$pw'\"" >&2
fi
echo "postgres://stratus_ci:$pw@127.0.0.1:$port/postgres"
