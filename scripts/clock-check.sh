#!/usr/bin/env bash
# The unit suite with the machine's clock moved years ahead, to awkward instants (Debian's
# faketime). Nothing in the product or the unit tests may read that clock for a decision
# (abono/clock.py; tests/unit/test_one_clock.py), so the suite must pass whatever it says.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/debian.sh
debian_package faketime /usr/bin/faketime "the clock check"
# zone | start of the faked clock (it ticks on from there) | why
instants=(
  "UTC|2032-02-29 23:59:00|a leap day, one minute before midnight"
  "America/New_York|2031-03-09 01:59:00|a minute before New York springs forward"
  "America/New_York|2030-11-03 01:30:00|New York's repeated hour, falling back"
)
for instant in "${instants[@]}"; do
  IFS='|' read -r zone start why <<< "$instant"
  echo "== unit suite at $start $zone ($why)"
  # The faked date shows in the log lines; monotonic timers (timeouts, rate limits) stay real.
  TZ="$zone" FAKETIME_DONT_FAKE_MONOTONIC=1 faketime -f "@$start" \
    .venv-app/bin/python -c 'import datetime; print("the machine says", datetime.datetime.now().astimezone().isoformat())'
  # A hung test fails the check in 15 minutes instead of holding CI to its limit. The fuzzing
  # (marker `fuzz`) ran once in the suite: it reads no clock of its own, so it is not run again.
  TZ="$zone" FAKETIME_DONT_FAKE_MONOTONIC=1 timeout 900 faketime -f "@$start" \
    .venv-app/bin/python -m pytest tests/unit -q -p no:cacheprovider -m "not fuzz"
done
