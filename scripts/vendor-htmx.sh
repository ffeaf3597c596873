#!/usr/bin/env bash
# Vendor htmx from the npm registry into the web package (no CDN at run time): the pinned
# version's dist/htmx.min.js, with its SHA-256 beside it.  Run by hand to update the pin; the
# file is committed, so neither `make run` nor the tests need npm.
set -euo pipefail
VERSION="${1:-2.0.11}"
DEST="$(cd "$(dirname "$0")/.." && pwd)/src/healthcard/web/static/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "htmx.org@$VERSION" >/dev/null && tar -xzf htmx.org-*.tgz)
mkdir -p "$DEST"
rm -f "$DEST"/htmx-*.min.js
cp "$work/package/dist/htmx.min.js" "$DEST/htmx-$VERSION.min.js"
(cd "$DEST" && sha256sum "htmx-$VERSION.min.js" > "htmx-$VERSION.min.js.sha256")
echo "vendored htmx $VERSION: $DEST/htmx-$VERSION.min.js ($(wc -c < "$DEST/htmx-$VERSION.min.js") bytes)"
