# One image for both roles, `api` (the default) and `worker`; both need MONGODB_URL and REDIS_URL.
# The in-memory `run` needs the package's `local` extra, which this image leaves out.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HOST=0.0.0.0 PORT=8000 STORAGE_DIR=/var/lib/os-image/images

WORKDIR /srv/os-image
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home-dir /srv/os-image osimage \
    && mkdir -p /var/lib/os-image/images \
    && chown -R osimage /var/lib/os-image

USER osimage
VOLUME ["/var/lib/os-image/images"]
EXPOSE 8000
ENTRYPOINT ["python", "-m", "app"]
CMD ["api"]
