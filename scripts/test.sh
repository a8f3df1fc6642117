#!/usr/bin/env bash
# The whole suite: architecture contracts, the assistant's data, unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
echo "== import contracts"
.venv-app/bin/lint-imports --no-cache
echo "== rasa data validate"
if ! TF_CPP_MIN_LOG_LEVEL=3 .venv-engine/bin/python -m rasa data validate \
    --domain bot/domain --data bot/data --config config.yml > var/log/validate.log 2>&1; then
  tail -n 30 var/log/validate.log >&2; echo "error: rasa data validate failed" >&2; exit 1
fi
echo "ok"
echo "== pytest"
.venv-app/bin/python -m pytest tests -q -p no:cacheprovider "$@"
echo "suite finished in $(( $(date +%s) - start )) s"
