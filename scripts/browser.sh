#!/usr/bin/env bash
# Debian's chromium for the browser tests (Playwright drives it; nothing is downloaded by it).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium (Debian package) for the browser tests…"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "warning: /usr/bin/chromium missing; install Debian's chromium (sudo apt-get install chromium)" >&2
fi
