#!/usr/bin/env bash
# Renders a sample expiry report and screenshots it with headless Chromium into
# docs/expiry-report.png. Not part of CI. Needs Debian's chromium (apt-get install -y chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(mktemp -d)"
profile="$(mktemp -d)"
trap 'rm -rf "$out" "$profile"' EXIT
html="$(npx tsx scripts/sample-expiry-report.ts "$out" | tail -1)"
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars \
  --screenshot=docs/expiry-report.png --window-size=1200,1400 "file://$html"
echo "docs/expiry-report.png"
