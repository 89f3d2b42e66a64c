#!/bin/sh
# Compose entrypoint of the redis service: render the ACL file from .env, then hand over to the image's own
# entrypoint (which drops to the redis user) with `--aclfile`.
set -eu
acl=/tmp/newsflow-users.acl
umask 077
sh "$(dirname "$0")/render-acl.sh" > "$acl"
chown redis:redis "$acl" 2>/dev/null || true
exec docker-entrypoint.sh "$@" --aclfile "$acl"
