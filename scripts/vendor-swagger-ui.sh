#!/usr/bin/env bash
# Refresh Swagger UI, which the sandbox's /docs page serves from the app's own files
# (channels/static/swagger-ui/): npm's swagger-ui-dist, with its licence. No CDN: the page
# must draw offline.
#   scripts/vendor-swagger-ui.sh            # the latest 5.x
#   scripts/vendor-swagger-ui.sh 5.35.0     # a given version
set -euo pipefail
version="${1:-5}"
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/channels/static/swagger-ui"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "swagger-ui-dist@$version" >/dev/null && tar xzf swagger-ui-dist-*.tgz)
mkdir -p "$dest"
for file in swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css \
    favicon-32x32.png LICENSE NOTICE; do
  cp "$work/package/$file" "$dest/$file"
done
sed -n 's/.*"version": *"\([^"]*\)".*/\1 (npm swagger-ui-dist)/p' "$work/package/package.json" \
  | head -1 >"$dest/VERSION"
echo "swagger-ui-dist $(cat "$dest/VERSION") in $dest"
