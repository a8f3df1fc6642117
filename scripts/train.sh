#!/usr/bin/env bash
# Trains the engine's model only when config.yml or the assistant's data changed.
# The fingerprint (scripts/model-fingerprint.sh) covers config.yml, the engine's lock file (the
# embedding model ships in a package), bot/domain, bot/data and bot/components; the actions are
# app code and do not change the model.
set -euo pipefail
cd "$(dirname "$0")/.."
model=models/abono.tar.gz
fingerprint=$(bash scripts/model-fingerprint.sh)
if [ -f "$model" ] && [ -f models/abono.fingerprint ] && [ "$(cat models/abono.fingerprint)" = "$fingerprint" ]; then
  echo "model is current ($model)"; exit 0
fi
echo "training the model (a few minutes)…"
mkdir -p models var/log
start=$(date +%s)
if ! TF_CPP_MIN_LOG_LEVEL=3 RASA_TELEMETRY_ENABLED=false .venv-engine/bin/python -m rasa train \
    --config config.yml --domain bot/domain --data bot/data \
    --out models --fixed-model-name abono --force > var/log/train.log 2>&1; then
  tail -n 40 var/log/train.log >&2
  echo "error: training failed; full log in var/log/train.log" >&2
  exit 1
fi
echo "$fingerprint" > models/abono.fingerprint
echo "model trained in $(( $(date +%s) - start )) s"
