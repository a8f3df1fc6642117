# syntax=docker/dockerfile:1
# The engine image: `python -m bot.engine run` (rasa 3.6 with the fixes of bot/engine.py) on
# port 5005 with the API token, from requirements/engine.lock, around the trained model.
# Built from the repository's root after `make train`:
#   docker compose -f deploy/docker-compose.yml build     (or)
#   docker build -f deploy/engine.Dockerfile -t abono-engine .
#
# The model is copied, not trained here: the image carries the very models/abono.tar.gz that
# `make train` produced and the tests and `make nlu-eval` measured on this checkout (rasa's
# training is not bit-for-bit reproducible, and takes minutes and GBs a build). The build
# refuses a model trained from other files than the ones copied (scripts/model-fingerprint.sh,
# the same fingerprint scripts/train.sh records), so a stale model cannot ship.
# No secret is baked in: the token and the database password come from the environment.
FROM python:3.10-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=3 \
    RASA_TELEMETRY_ENABLED=false

WORKDIR /srv/abono

# The lock files carry no hashes (pip freeze), so they are installed with -r; pip pinned as
# scripts/setup.sh pins it (rasa needs an old `packaging`).
COPY requirements/engine.lock requirements/engine.lock
RUN python -m pip install "pip==24.0" \
 && python -m pip install -r requirements/engine.lock

COPY config.yml ./
COPY bot/ bot/
COPY scripts/model-fingerprint.sh scripts/model-fingerprint.sh
COPY models/abono.tar.gz models/abono.fingerprint models/
COPY deploy/engine-entrypoint.sh deploy/engine-lock-store.yml deploy/
# bot/endpoints.yml (callbacks to the app, the lean SQL tracker store) plus the Redis lock
# store that several engine replicas share, as abono/integrations/engine_process.py adds it.
RUN if [ "$(bash scripts/model-fingerprint.sh)" != "$(cat models/abono.fingerprint)" ]; then \
      echo "models/abono.tar.gz was trained from other files: run make train" >&2; exit 1; \
    fi \
 && cat bot/endpoints.yml deploy/engine-lock-store.yml > deploy/endpoints.yml \
 && useradd --system --uid 10001 --user-group --create-home --home-dir /home/abono abono

# Not root. rasa unpacks the model under /tmp and keeps its own files in $HOME.
USER abono
ENV RASA_CACHE_DIRECTORY=/tmp/rasa-cache
EXPOSE 5005
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:5005/status?token=' + os.environ['ABONO_ENGINE_TOKEN'], timeout=4).status != 200)"]
ENTRYPOINT ["/srv/abono/deploy/engine-entrypoint.sh"]
