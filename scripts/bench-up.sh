#!/usr/bin/env bash
# What `make bench` needs beyond the test set-up: the HTTP load generator wrk (Debian's package)
# for the "## Platform" section.  pgbench comes with PostgreSQL's client tools (scripts/pg-up.sh
# starts the server).  Idempotent: a second run changes nothing.  Installs as root.
set -euo pipefail
log() { echo "bench-up: $*"; }

if command -v wrk >/dev/null 2>&1; then
  log "wrk already installed: $(command -v wrk)"
else
  [[ $EUID -eq 0 ]] || { log "missing package: wrk (run as root); the platform bench will say so"; exit 0; }
  log "installing: wrk"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
  command -v wrk >/dev/null 2>&1 || { log "wrk did not install"; exit 1; }
fi
if ! command -v pgbench >/dev/null 2>&1; then
  log "pgbench is missing (PostgreSQL client tools); the platform bench reports no pgbench ratio"
fi
