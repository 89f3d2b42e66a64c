#!/bin/sh
# Render users.acl.template (path: $1, default beside this script) to stdout, from the environment:
# REDIS_{INGEST,CLEAN,ENRICH,PUBLISH,FETCH,PRODUCER,OPERATOR,API}_PASSWORD and NEWSFLOW_KEY_PREFIX (default newsflow).
# Passwords go in as SHA-256 hashes (`#hex`), never in clear. POSIX sh + sed + sha256sum: runs in redis:alpine.
set -eu
template=${1:-$(dirname "$0")/users.acl.template}
prefix=${NEWSFLOW_KEY_PREFIX:-newsflow}
case $prefix in
  *[!A-Za-z0-9_.-]*) echo "render-acl: NEWSFLOW_KEY_PREFIX may hold only letters, digits, _ . -" >&2; exit 64 ;;
esac
hash_of() {
  eval "password=\${$1:-}"
  if [ -z "$password" ]; then
    echo "render-acl: $1 is empty; set it in .env (see .env.example)" >&2
    exit 64
  fi
  printf '%s' "$password" | sha256sum | cut -d' ' -f1
}
sed \
  -e "s/\${PREFIX}/$prefix/g" \
  -e "s/\${INGEST_HASH}/$(hash_of REDIS_INGEST_PASSWORD)/g" \
  -e "s/\${CLEAN_HASH}/$(hash_of REDIS_CLEAN_PASSWORD)/g" \
  -e "s/\${ENRICH_HASH}/$(hash_of REDIS_ENRICH_PASSWORD)/g" \
  -e "s/\${PUBLISH_HASH}/$(hash_of REDIS_PUBLISH_PASSWORD)/g" \
  -e "s/\${FETCH_HASH}/$(hash_of REDIS_FETCH_PASSWORD)/g" \
  -e "s/\${PRODUCER_HASH}/$(hash_of REDIS_PRODUCER_PASSWORD)/g" \
  -e "s/\${OPERATOR_HASH}/$(hash_of REDIS_OPERATOR_PASSWORD)/g" \
  -e "s/\${API_HASH}/$(hash_of REDIS_API_PASSWORD)/g" \
  -e '/^#/d' -e '/^$/d' \
  "$template"
