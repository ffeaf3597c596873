#!/usr/bin/env bash
# Make sure the machine's PostgreSQL answers on 127.0.0.1:5432 (start the installed cluster when
# it is stopped).  The tests create and drop their own scratch database on it; without a server
# they fail under CI=true and skip elsewhere.
set -euo pipefail
HOST=${HEALTHCARD_PG_HOST:-127.0.0.1}
PORT=${HEALTHCARD_PG_PORT:-5432}

ready() { pg_isready -q -h "$HOST" -p "$PORT" 2>/dev/null; }

if ! command -v pg_isready >/dev/null 2>&1; then
    echo "pg-up: PostgreSQL client tools are not installed; PostgreSQL tests will not run" >&2
    exit 0
fi
if ready; then exit 0; fi
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    for version in $(ls /etc/postgresql); do
        pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
    done
    for _ in $(seq 1 30); do
        if ready; then echo "pg-up: started PostgreSQL on $HOST:$PORT" >&2; exit 0; fi
        sleep 0.5
    done
fi
echo "pg-up: PostgreSQL does not answer on $HOST:$PORT" >&2
