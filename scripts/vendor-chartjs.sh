#!/usr/bin/env bash
# Refresh the charting library the dashboard bundles (channels/static/chartjs/): Chart.js's UMD
# build from the npm registry, with its licence. No CDN: the page must draw offline.
#   scripts/vendor-chartjs.sh            # the latest 4.x
#   scripts/vendor-chartjs.sh 4.6.2      # a given version
set -euo pipefail
version="${1:-4}"
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/channels/static/chartjs"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "chart.js@$version" >/dev/null && tar xzf chart.js-*.tgz)
mkdir -p "$dest"
cp "$work/package/dist/chart.umd.min.js" "$dest/chart.umd.min.js"
cp "$work/package/LICENSE.md" "$dest/LICENSE.md"
node -p "require('$work/package/package.json').version" >"$dest/VERSION" 2>/dev/null \
  || sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$work/package/package.json" | head -1 >"$dest/VERSION"
echo "chart.js $(cat "$dest/VERSION") in $dest"
