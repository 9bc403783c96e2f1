# One image for both roles: `api` (the default command) and `worker`. Both need MONGODB_URL and
# REDIS_URL; docker-compose.yml runs them with MongoDB and Redis. The in-memory `run` needs the
# package's `local` extra, which this image leaves out.

# Build stage: the package and its dependencies in a virtual environment.
FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
RUN python -m venv /opt/os-image \
    && /opt/os-image/bin/pip install --no-cache-dir .

# Runtime stage: only that virtual environment, run by an unprivileged user.
FROM python:3.11-slim-bookworm

ENV PATH=/opt/os-image/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    WORKER_METRICS_PORT=9101 \
    STORAGE_DIR=/var/lib/os-image/images \
    LOG_FORMAT=json

RUN groupadd --system --gid 10001 osimage \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin osimage \
    && mkdir -p /var/lib/os-image/images \
    && chown 10001:10001 /var/lib/os-image/images
COPY --from=build /opt/os-image /opt/os-image

USER 10001:10001
WORKDIR /var/lib/os-image
# A named volume mounted here starts with this directory's owner, so the user can write to it.
VOLUME ["/var/lib/os-image/images"]
# 8000: the API (PORT); 9101: the worker's /metrics (WORKER_METRICS_PORT).
EXPOSE 8000 9101
# NOTE: no HEALTHCHECK here, because the probe depends on the role: docker-compose.yml gives each
# service its own (`python -m app healthcheck api` or `... worker`).
ENTRYPOINT ["python", "-m", "app"]
CMD ["api"]
