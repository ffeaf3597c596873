#!/usr/bin/env bash
# Make sure the machine's NATS server (with JetStream) answers on 127.0.0.1:4222: start the
# installed nats-server when it is stopped (install Debian's package first when it is missing).  The federation tests use it with a namespace of
# their own per test (and start private servers of their own for the outage tests); without a
# server they fail under CI=true and skip elsewhere.
set -euo pipefail
HOST=${HEALTHCARD_NATS_HOST:-127.0.0.1}
PORT=${HEALTHCARD_NATS_PORT:-4222}
SERVER=${HEALTHCARD_NATS_SERVER:-/usr/sbin/nats-server}
STORE=/var/lib/nats-server
LOG=/var/log/nats-server.log

ready() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }

if ready; then exit 0; fi
if [ ! -x "$SERVER" ] && [ "$SERVER" = /usr/sbin/nats-server ] && [ "$(id -u)" -eq 0 ]; then
    echo "nats-up: installing nats-server (Debian's package)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nats-server >/dev/null || true
fi
if [ ! -x "$SERVER" ]; then
    echo "nats-up: $SERVER is not installed; NATS tests will not run" >&2
    exit 0
fi
if command -v start-stop-daemon >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    mkdir -p "$STORE"
    start-stop-daemon --start --oknodo --background --exec "$SERVER" -- \
        -a "$HOST" -p "$PORT" -js -sd "$STORE" -l "$LOG" || true
    for _ in $(seq 1 30); do
        if ready; then echo "nats-up: started NATS on $HOST:$PORT" >&2; exit 0; fi
        sleep 0.2
    done
fi
echo "nats-up: NATS does not answer on $HOST:$PORT" >&2
