#!/usr/bin/env bash
# Debian's chromium for the browser tests (Playwright drives it; nothing is downloaded by it).
set -euo pipefail
source "$(dirname "$0")/debian.sh"
debian_package chromium /usr/bin/chromium "the browser tests" || echo "warning: the browser tests will fail" >&2
