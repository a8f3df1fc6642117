#!/bin/sh
# The engine image's entrypoint: rasa's `run` with the fixes of bot/engine.py, the API behind
# ABONO_ENGINE_TOKEN, calling back ABONO_APP_URL (the apps' callback listeners), trackers in
# ABONO_TRACKER_URL (PostgreSQL) and locks in Redis (deploy/endpoints.yml, built in the image).
# It listens on every interface of its container, which sits on the internal `backend`
# network only, with no published port (deploy/docker-compose.yml).
set -eu
export SANIC_WORKERS="${SANIC_WORKERS:-1}"
: "${ABONO_ENGINE_TOKEN:?ABONO_ENGINE_TOKEN is not set}"
: "${ABONO_APP_URL:?ABONO_APP_URL is not set}"
: "${ABONO_TRACKER_URL:?ABONO_TRACKER_URL is not set}"
: "${ABONO_REDIS_PASSWORD:?ABONO_REDIS_PASSWORD is not set}"
exec python -m bot.engine run \
  --enable-api \
  --auth-token "$ABONO_ENGINE_TOKEN" \
  --interface 0.0.0.0 \
  --port 5005 \
  --model models/abono.tar.gz \
  --credentials bot/credentials.yml \
  --endpoints deploy/endpoints.yml \
  --quiet
