#!/usr/bin/env bash
# Bring up a SoftHSM2 token for the key store's PKCS#11 KEK (tests, demos).
#   config:   $DIR/softhsm2.conf (its own tokendir $DIR/tokens, nothing under /var/lib)
#   token:    label "healthcard", user PIN 1234, SO PIN 5678 (test values, not secrets)
# Point PKCS#11 clients at it with SOFTHSM2_CONF=$DIR/softhsm2.conf.  The KEK itself is
# created by `healthcard keys hsm-init` (or the tests), not here.
# Idempotent: safe to run repeatedly; a second run changes nothing. Works without systemd.
# Env: HEALTHCARD_SOFTHSM_DIR (default /tmp/healthcard-softhsm).
set -euo pipefail

DIR=${HEALTHCARD_SOFTHSM_DIR:-/tmp/healthcard-softhsm}
CONF=$DIR/softhsm2.conf
TOKENDIR=$DIR/tokens
LABEL=healthcard
USER_PIN=1234
SO_PIN=5678
log() { echo "hsm-up: $*"; }

# 1. Package: softhsm2 (softhsm2-util + /usr/lib/softhsm/libsofthsm2.so).
if dpkg-query -W -f='${Status}' softhsm2 2>/dev/null | grep -q 'ok installed'; then
  log "softhsm2 already installed"
else
  [[ $EUID -eq 0 ]] || { log "missing package: softhsm2 (run as root)"; exit 1; }
  log "installing: softhsm2"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends softhsm2 >/dev/null
fi

# 2. Config with its own token directory.
want="# written by scripts/hsm-up.sh
directories.tokendir = $TOKENDIR
objectstore.backend = file
log.level = ERROR
slots.removable = false
slots.mechanisms = ALL
library.reset_on_fork = false"
mkdir -p "$TOKENDIR"
chmod 700 "$TOKENDIR"
if [[ "$(cat "$CONF" 2>/dev/null)" != "$want" ]]; then
  printf '%s\n' "$want" >"$CONF"
  log "wrote $CONF (tokendir $TOKENDIR)"
else
  log "config already in place: $CONF"
fi
export SOFTHSM2_CONF=$CONF

# 3. The token, unless one with that label exists (labels are padded with blanks).
has_token() { softhsm2-util --show-slots 2>/dev/null | grep -qE "^[[:space:]]*Label:[[:space:]]+$LABEL[[:space:]]*$"; }
if has_token; then
  log "token '$LABEL' already initialised"
else
  softhsm2-util --init-token --free --label "$LABEL" --pin "$USER_PIN" --so-pin "$SO_PIN" >/dev/null
  has_token || { log "token '$LABEL' did not appear after --init-token"; exit 1; }
  log "initialised token '$LABEL' (user PIN $USER_PIN, SO PIN $SO_PIN)"
fi
log "ready: SOFTHSM2_CONF=$CONF, token '$LABEL', module /usr/lib/softhsm/libsofthsm2.so"
