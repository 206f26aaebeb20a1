# syntax=docker/dockerfile:1
# One image for the four sample services (downstream, leaky, fixed, loadgen):
#   docker compose builds it once; each service picks its module with `command:`.
# The build stage has a compiler for leaktrace's C extension (setup.py); the runtime stage gets
# only the wheels, plus services/ as source (the leaktrace wheel does not ship it), run with
# `python -m services.<name>` from /app (downstream: `leaktrace run -- gunicorn ...` from /app,
# gunicorn and uvicorn-worker coming with the `services` extra).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY instrumentation ./instrumentation
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[services]"

FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels "leaktrace[services]" \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin app \
 && mkdir -p /app /run/loadgen \
 && chown app /app /run/loadgen
WORKDIR /app
COPY services /app/services
USER app
# Each service sets its own command and healthcheck in docker-compose.yml (GET /healthz through
# urllib: the slim image has no curl). This default answers for a service on $PORT.
ENV PORT=8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=2)"]
CMD ["python", "-m", "services.downstream", "--host", "0.0.0.0"]
