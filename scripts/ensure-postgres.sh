#!/usr/bin/env bash
# Make sure the PostgreSQL the test suite uses accepts connections.
#
# The suite talks to DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres, see
# tests/testenv.py). If that server is local, installed from Debian's packages and stopped,
# it is started (pg_ctlcluster) and waited for; otherwise this says what to do and fails.
set -euo pipefail

url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
case "$url" in
  postgres://* | postgresql://*) ;;
  *) echo "ensure-postgres: DATABASE_URL is not a postgres:// URL: the test suite needs PostgreSQL" >&2; exit 1 ;;
esac

# host and port out of postgres://user:password@host:port/name
rest="${url#*://}"
rest="${rest%%/*}"
rest="${rest##*@}"
host="${rest%%:*}"
port=5432
[[ "$rest" == *:* ]] && port="${rest##*:}"
host="${host:-127.0.0.1}"

accepting() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$host" -p "$port" -t 2
  else
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
  fi
}

if accepting; then
  echo "ensure-postgres: PostgreSQL accepts connections on $host:$port"
  exit 0
fi

case "$host" in
  127.0.0.1 | localhost | ::1) ;;
  *) echo "ensure-postgres: PostgreSQL on $host:$port (from DATABASE_URL) does not accept connections" >&2; exit 1 ;;
esac

if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
  cat >&2 <<EOF
ensure-postgres: no PostgreSQL answers on $host:$port and none is installed here.
  The test suite needs one. On Debian:  sudo apt-get install -y postgresql
  (the suite connects with DATABASE_URL, by default as user postgres without a password
  over TCP: on a development machine, a "trust" line for 127.0.0.1/32 in pg_hba.conf),
  or point DATABASE_URL at a PostgreSQL you have.
EOF
  exit 1
fi

version="$(ls /etc/postgresql | sort -V | tail -n 1)"
echo "ensure-postgres: starting the local PostgreSQL $version cluster"
start=(pg_ctlcluster --skip-systemctl-redirect "$version" main start)
if [ "$(id -u)" -eq 0 ]; then
  "${start[@]}" || true
elif command -v sudo >/dev/null 2>&1; then
  sudo -n "${start[@]}" || true
else
  echo "ensure-postgres: not root and no sudo: run as root: ${start[*]}" >&2
  exit 1
fi

for _ in $(seq 1 60); do
  if accepting; then
    echo "ensure-postgres: PostgreSQL accepts connections on $host:$port"
    exit 0
  fi
  sleep 0.5
done
echo "ensure-postgres: PostgreSQL did not start accepting connections on $host:$port within 30 s" >&2
ls /var/log/postgresql/ >/dev/null 2>&1 && tail -n 20 /var/log/postgresql/*.log >&2 || true
exit 1
