# syntax=docker/dockerfile:1
# The ceasefire monitor: one image for workers (`run`) and the one-shot commands
# (`topics`, `feed`, `simulate`, `tallies`, ...).
#
#   docker build -t ceasefire-monitor .
#   docker run --rm -e CEASEFIRE_BROKER=kafka://kafka:9092 -e CEASEFIRE_API_TOKEN \
#       -p 127.0.0.1:6066:6066 ceasefire-monitor
#
# The image listens on every address (CEASEFIRE_WEB_HOST=0.0.0.0), so `run` needs a token
# (CEASEFIRE_API_TOKEN, or CEASEFIRE_API_TOKENS_FILE) or CEASEFIRE_ANONYMOUS_POST=true, and
# answers only to its own host names, IP addresses and CEASEFIRE_ALLOWED_HOSTS.

# -- build: install the package and its dependencies into a virtualenv ---------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# A compiler only for dependencies without a wheel for this platform; it stays in this
# stage and never reaches the runtime image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# README* : pyproject.toml names README.md as the long description.
COPY pyproject.toml README* ./
COPY schemas ./schemas
COPY streams ./streams
COPY alerting ./alerting
RUN pip install .

# -- runtime -------------------------------------------------------------------------
FROM python:3.11-slim

LABEL org.opencontainers.image.title="ceasefire-monitor" \
      org.opencontainers.image.description="Ceasefire-violation monitor: validates, classifies, tallies and alerts on incident reports" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CEASEFIRE_WEB_HOST=0.0.0.0 \
    CEASEFIRE_WEB_PORT=6066 \
    CEASEFIRE_DATA_DIR=/var/lib/ceasefire

RUN groupadd --system --gid 10001 ceasefire \
    && useradd --system --uid 10001 --gid ceasefire --home-dir /var/lib/ceasefire \
       --shell /usr/sbin/nologin ceasefire \
    && install -d -o ceasefire -g ceasefire -m 0750 /var/lib/ceasefire

COPY --from=build /opt/venv /opt/venv

USER ceasefire:ceasefire
WORKDIR /var/lib/ceasefire
# Local state of the worker (recovered from Kafka changelogs when empty).
VOLUME ["/var/lib/ceasefire"]

EXPOSE 6066

# 200 once the worker has recovered its state and is processing (GET /healthz).
# urlopen raises on connection errors and on any non-2xx answer: exit 1.
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CEASEFIRE_WEB_PORT', '6066'), timeout=4)"]

ENTRYPOINT ["ceasefire-monitor"]
CMD ["run"]
