#!/bin/sh
# What the official redis image's entrypoint does, with setpriv for gosu.
set -e
# `docker run IMAGE --option` and `docker run IMAGE x.conf` mean redis-server.
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
  set -- redis-server "$@"
fi
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
  find . \! -user redis -exec chown redis '{}' +
  exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi
if [ "$1" = redis-server ]; then
  # The official image compiles protected mode out (the container's network is the boundary); Debian's
  # redis-server has it on, which refuses other containers whenever the default user has no password.
  set -- "$@" --protected-mode no
fi
[ "$(umask)" != 0022 ] || umask 0077
exec "$@"
