#!/usr/bin/env bash
# What the browser tests need: Debian's Chromium (driven by Playwright through its
# executable_path — Playwright's own browser downloads are not used) and a CJK font so that the
# pages' Chinese renders in screenshots.  Idempotent: a second run changes nothing.  Installs as root.
set -euo pipefail
log() { echo "browser-up: $*"; }

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fc-list 2>/dev/null | grep -qi "noto sans cjk" || missing+=(fonts-noto-cjk)
if [[ ${#missing[@]} -eq 0 ]]; then
  log "chromium and a CJK font already installed: $(command -v chromium)"
  exit 0
fi
[[ $EUID -eq 0 ]] || { log "missing packages: ${missing[*]} (run as root)"; exit 1; }
log "installing: ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" fontconfig >/dev/null
command -v chromium >/dev/null 2>&1 || { log "chromium did not install"; exit 1; }
log "ready: $(chromium --version 2>/dev/null | head -1)"
