#!/usr/bin/env bash
# Stop the pcscd that scripts/pcsc-up.sh started (a pcscd started otherwise is left alone).
set -euo pipefail

STATE_DIR=${PCSC_STATE_DIR:-/tmp/pcsc-up}
RUN_DIR=/run/pcscd
log() { echo "pcsc-down: $*"; }
alive() { [[ -r /proc/$1/stat ]] && awk '$2=="(pcscd)" && $3!="Z"{ok=1} END{exit !ok}' "/proc/$1/stat"; }

pid=$(cat "$STATE_DIR/pcscd.pid" 2>/dev/null || true)
if [[ -z $pid ]] || ! alive "$pid"; then
  log "no pcscd started by pcsc-up.sh is running"
  rm -f "$STATE_DIR/pcscd.pid"
  exit 0
fi

kill -TERM "$pid"
for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
if alive "$pid"; then kill -KILL "$pid"; sleep 0.2; fi
# An exited pcscd may linger as a zombie until init reaps it; pcscd's own
# stale-socket check would mistake it for a live daemon, so clean up here.
rm -f "$RUN_DIR/pcscd.comm" "$RUN_DIR/pcscd.pid" "$STATE_DIR/pcscd.pid"
log "stopped pcscd (pid $pid)"
