#!/usr/bin/env bash
# Prints the fingerprint of what the model is trained from: config.yml, the engine's lock file
# (the embedding model ships in a package), bot/domain, bot/data and bot/components. The actions
# are app code and do not change the model. scripts/train.sh retrains when it changes;
# deploy/engine.Dockerfile refuses to build an image around a model trained from other files.
set -euo pipefail
cd "$(dirname "$0")/.."
{ cat config.yml requirements/engine.lock; find bot/domain bot/data bot/components -type f ! -name '*.pyc' | LC_ALL=C sort | xargs cat; } | sha256sum | cut -d' ' -f1
