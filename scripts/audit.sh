#!/usr/bin/env bash
# make audit: pip-audit of both lock files (scripts/audit.py) from its own environment,
# .venv-audit, pinned by requirements/audit.lock. Needs a vulnerability service (OSV by default,
# or PyPI's JSON API): where none is reachable it fails with exit 2 and says so. Not in .ci/run
# while CI machines reach no such service (docs/dependencies.md).
set -euo pipefail
cd "$(dirname "$0")/.."

want=$(sha256sum requirements/audit.lock | cut -d' ' -f1)
if [ ! -x .venv-audit/bin/python ] || [ "$(cat .venv-audit/.abono-stamp 2>/dev/null)" != "$want" ]; then
  echo "setting up .venv-audit…"
  [ -x .venv-audit/bin/python ] || .venv-app/bin/python -m venv .venv-audit
  .venv-audit/bin/python -m pip install --quiet --disable-pip-version-check "pip==24.0"
  .venv-audit/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/audit.lock
  echo "$want" > .venv-audit/.abono-stamp
fi
exec .venv-audit/bin/python scripts/audit.py "$@"
