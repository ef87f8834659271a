# syntax=docker/dockerfile:1
# Wikimedia enterprise export API: gunicorn (sync workers) as a non-root user.
# Build: docker build -t wme-export .      Run: see docker-compose.yml

# ---- build stage: wheels for every pinned runtime dependency ----------------------------------
FROM python:3.11-slim AS build
WORKDIR /build
COPY requirements.txt .
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r requirements.txt

# ---- runtime stage: no compilers, no pip cache, no root -----------------------------------------
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=8080 \
    BIND_HOST=0.0.0.0
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels /wheels/*.whl && rm -rf /wheels
COPY --chown=root:root service/ service/
COPY --chown=root:root sql/ sql/
COPY --chown=root:root docs/openapi.yaml docs/openapi.yaml
COPY --chown=root:root scripts/serve scripts/serve
USER app
EXPOSE 8080
# Liveness: /health answers without the database. The orchestrator's readiness probe is /ready.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8080'), timeout=2).read() == b'OK' else 1)"]
# gunicorn handles SIGTERM gracefully: requests drain, audit buffers flush.
STOPSIGNAL SIGTERM
CMD ["scripts/serve"]
