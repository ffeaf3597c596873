#!/usr/bin/env bash
# Bring up PC/SC for tests: pcscd + vsmartcard vpcd with two virtual readers.
#   "Virtual PCD 00 00" <- vicc connects to 127.0.0.1:35963 (user card)
#   "Virtual PCD 00 01" <- vicc connects to 127.0.0.1:35964 (SAM)
# vpcd is the TCP *server* inside pcscd; one reader.conf entry gives two slots,
# port N and N+1. Idempotent: safe to run repeatedly. Works without systemd.
# Env: PCSCD_ARGS (e.g. "--debug --apdu"), PCSC_STATE_DIR (default /tmp/pcsc-up).
set -euo pipefail

STATE_DIR=${PCSC_STATE_DIR:-/tmp/pcsc-up}
RUN_DIR=/run/pcscd
CONF=/etc/reader.conf.d/vpcd
PORTS=(35963 35964)
log() { echo "pcsc-up: $*"; }

# 1. Packages (gcc + libpcsclite-dev are what `pip install pyscard` needs: it has
#    no Linux wheel and builds from sdist; swig comes from PyPI as a build dep).
pkgs=()
for p in pcscd vsmartcard-vpcd libpcsclite-dev pcsc-tools; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || pkgs+=("$p")
done
command -v gcc >/dev/null || pkgs+=(gcc libc6-dev)
if ((${#pkgs[@]})); then
  [[ $EUID -eq 0 ]] || { log "missing packages: ${pkgs[*]} (run as root)"; exit 1; }
  log "installing: ${pkgs[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
else
  log "packages already installed"
fi

# 2. vpcd config: server mode ("/dev/null" host) on base port 0x8C7B = 35963.
want=$'FRIENDLYNAME "Virtual PCD"\nDEVICENAME   /dev/null:0x8C7B\nLIBPATH      /usr/lib/pcsc/drivers/serial/libifdvpcd.so\nCHANNELID    0x8C7B'
if [[ "$(cat "$CONF" 2>/dev/null)" != "$want" ]]; then
  [[ $EUID -eq 0 ]] || { log "$CONF needs rewriting (run as root)"; exit 1; }
  printf '%s\n' "$want" >"$CONF"
  log "wrote $CONF (restart pcscd if it was already running)"
fi

# 3. pcscd: running = pid file names a live, non-zombie pcscd.
alive() { [[ -r /proc/$1/stat ]] && awk '$2=="(pcscd)" && $3!="Z"{ok=1} END{exit !ok}' "/proc/$1/stat"; }
# while starting, our child may still be "setsid" before it execs pcscd: only ask that it lives
exists() { [[ -r /proc/$1/stat ]] && awk '$3!="Z"{ok=1} END{exit !ok}' "/proc/$1/stat"; }
listening() { grep -qiE ":$(printf '%04X' "$1") [0-9A-F:]+ 0A " /proc/net/tcp; }
pid=$(tr -d '\0' 2>/dev/null <"$RUN_DIR/pcscd.pid" || true)
if [[ -n $pid ]] && alive "$pid"; then
  log "pcscd already running (pid $pid)"
else
  [[ $EUID -eq 0 ]] || { log "pcscd not running; start it as root"; exit 1; }
  rm -f "$RUN_DIR/pcscd.comm" "$RUN_DIR/pcscd.pid"   # stale after kill -9 / zombie
  mkdir -p "$STATE_DIR"
  # shellcheck disable=SC2086
  setsid pcscd --foreground ${PCSCD_ARGS:-} >"$STATE_DIR/pcscd.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$STATE_DIR/pcscd.pid"
  log "started pcscd (pid $pid, log $STATE_DIR/pcscd.log)"
fi

# 4. Wait for the client socket and both vpcd listening ports.
for _ in $(seq 100); do
  [[ -S $RUN_DIR/pcscd.comm ]] && listening "${PORTS[0]}" && listening "${PORTS[1]}" && break
  exists "$pid" || { log "pcscd exited:"; cat "$STATE_DIR/pcscd.log" 2>/dev/null; exit 1; }
  sleep 0.1
done
for port in "${PORTS[@]}"; do
  listening "$port" || { log "vpcd not listening on $port (pcscd started with another config?)"; exit 1; }
done
log "ready: $RUN_DIR/pcscd.comm; vpcd on ${PORTS[*]} -> 'Virtual PCD 00 00', 'Virtual PCD 00 01'"
