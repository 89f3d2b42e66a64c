#!/bin/sh
# Build local stand-ins for the compose file's upstream images (python:3.11-slim, redis:7.2-alpine,
# postgres:16-alpine) from Debian packages, for machines that cannot reach Docker Hub:
#   sh deploy/test/stand-ins.sh          # then: COMPOSE_FILE=docker-compose.yml:deploy/test/compose.stand-ins.yml
# A minbase Debian root made by debootstrap is imported once (rebuilt when this script changes); the three images
# are built FROM it with `docker build --network host`, so Docker's layer cache rebuilds them only when their
# folder changes. Needs root (debootstrap), docker, and Debian's package mirror.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
suite=${STAND_IN_SUITE:-bookworm}
mirror=${STAND_IN_MIRROR:-http://deb.debian.org/debian}
base=newsflow-stand-in/debian:$suite
inputs=$(sha256sum < "$0" | cut -c1-16)

work=$(mktemp -d /tmp/newsflow-stand-ins.XXXXXX)
# --one-file-system: never follow a mount a failed debootstrap may have left inside the new root.
trap 'rm -rf --one-file-system "$work"' EXIT

log() { printf 'stand-ins: %s\n' "$*" >&2; }

if [ "$(docker image inspect -f '{{index .Config.Labels "newsflow.inputs"}}' "$base" 2>/dev/null)" != "$inputs" ]; then
  command -v debootstrap >/dev/null || { log "debootstrap is missing (apt-get install debootstrap)"; exit 1; }
  root=$work/root
  log "debootstrap $suite into $root"
  debootstrap --variant=minbase --include=ca-certificates "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }
  # What Debian's own container images do: packages never start services at install time, no recommends,
  # no package caches kept in layers.
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d" && chmod 755 "$root/usr/sbin/policy-rc.d"
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$root/etc/apt/apt.conf.d/90stand-in"
  printf 'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };\n' \
    >"$root/etc/apt/apt.conf.d/docker-clean"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  # This machine may reach the registries through a TLS-inspecting proxy whose CA only the host's bundle holds:
  # carry the bundle over, also as a local CA so that update-ca-certificates keeps it.
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    cp /etc/ssl/certs/ca-certificates.crt "$root/usr/local/share/ca-certificates/host-bundle.crt"
    cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  fi
  log "import $base"
  tar -C "$root" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["bash"]' \
    --change "LABEL newsflow.inputs=$inputs" \
    - "$base" >/dev/null
fi

for image in python:3.11 redis:7 postgres:15; do
  name=${image%%:*}
  log "build newsflow-stand-in/$image"
  # The output only when the build fails (a current docker client also warns that it uses the legacy builder).
  docker build --network host --build-arg "BASE=$base" -t "newsflow-stand-in/$image" "$here/$name" \
    >"$work/build.log" 2>&1 || { tail -n 30 "$work/build.log" >&2; exit 1; }
done
log "ready: $base, newsflow-stand-in/python:3.11, newsflow-stand-in/redis:7, newsflow-stand-in/postgres:15"
