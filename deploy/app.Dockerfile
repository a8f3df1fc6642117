# syntax=docker/dockerfile:1
# The app image: `abono serve` (public port 8000, engine callbacks on 8001), `abono worker`
# and `abono migrate`, from requirements/app.lock. Built from the repository's root:
#   docker compose -f deploy/docker-compose.yml build     (or)
#   docker build -f deploy/app.Dockerfile -t abono-app .
# No secret is baked in: every ABONO_* secret comes from the environment at run time
# (deploy/.env, docs/deploy.md). app.Dockerfile.dockerignore lists what the build may see.
FROM python:3.10-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /srv/abono

# The lock file first, so that a code change reuses the installed dependencies' layer. The lock
# files carry no hashes (pip freeze), so they are installed with -r; pip itself is pinned as
# scripts/setup.sh pins it.
COPY requirements/app.lock requirements/app.lock
RUN python -m pip install "pip==24.0" \
 && python -m pip install -r requirements/app.lock

# The project, editable as scripts/setup.sh installs it: its entry points (channels, actions)
# register, and the code finds locales/ and policies/ beside itself (abono.settings.ROOT).
COPY pyproject.toml ./
COPY abono/ abono/
COPY channels/ channels/
COPY policies/ policies/
COPY bot/ bot/
COPY locales/ locales/
COPY deploy/app-entrypoint.sh deploy/app-entrypoint.sh
RUN python -m pip install --no-deps -e . \
 && useradd --system --uid 10001 --user-group --create-home --home-dir /home/abono abono

# Not root; the code is root's and read-only to the app.
USER abono
EXPOSE 8000 8001
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
ENTRYPOINT ["/srv/abono/deploy/app-entrypoint.sh"]
CMD ["serve"]
