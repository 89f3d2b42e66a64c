#!/bin/sh
# Print the Secret `newsflow-secrets` that deploy/k8s reads, from the compose stack's .env (sh deploy/gen-env.sh > .env):
#   sh deploy/k8s/secret.sh .env | kubectl apply -f -
# It holds every token, each service's Redis URL (its own ACL user) and PostgreSQL URL, the Redis ACL file (the
# users of deploy/redis/users.acl.template, passwords as SHA-256 hashes, plus `keda`, which may only read the
# lag and pending counts of the pipeline streams) and what KEDA's TriggerAuthentication needs.
# Where Redis and PostgreSQL live (defaults: the StatefulSets of deploy/k8s/stores), from the environment or .env:
#   K8S_NAMESPACE=newsflow  REDIS_HOST=redis  REDIS_PORT=6379  POSTGRES_HOST=postgres  POSTGRES_PORT=5432
#   POSTGRES_DB=newsflow  POSTGRES_USER=newsflow  POSTGRES_API_USER=newsflow_api
# Values go into URLs as they are: letters, digits, - and _ only (gen-env.sh makes hex).
set -eu
env_file=${1:?usage: sh deploy/k8s/secret.sh ENV_FILE > secret.yaml}
here=$(dirname "$0")
set -a
# shellcheck disable=SC1090
. "$env_file"
set +a
namespace=${K8S_NAMESPACE:-newsflow}
redis_host=${REDIS_HOST:-redis}
redis_port=${REDIS_PORT:-6379}
pg_host=${POSTGRES_HOST:-postgres}
pg_port=${POSTGRES_PORT:-5432}
pg_db=${POSTGRES_DB:-newsflow}
pg_user=${POSTGRES_USER:-newsflow}
pg_api_user=${POSTGRES_API_USER:-newsflow_api}
prefix=${NEWSFLOW_KEY_PREFIX:-newsflow}

# Every secret first (a failure inside the document's $(...) below would not stop the script).
for name in NEWSFLOW_API_TOKEN NEWSFLOW_READ_TOKEN NEWSFLOW_OPERATOR_TOKEN POSTGRES_PASSWORD POSTGRES_API_PASSWORD \
    REDIS_INGEST_PASSWORD REDIS_CLEAN_PASSWORD REDIS_ENRICH_PASSWORD REDIS_PUBLISH_PASSWORD REDIS_FETCH_PASSWORD \
    REDIS_PRODUCER_PASSWORD REDIS_OPERATOR_PASSWORD REDIS_API_PASSWORD REDIS_KEDA_PASSWORD; do
  eval "value=\${$name:-}"
  if [ -z "$value" ]; then
    echo "secret.sh: $name is empty in $env_file (sh deploy/gen-env.sh > .env fills every secret)" >&2
    exit 64
  fi
  case $value in
    *[!A-Za-z0-9_-]*) echo "secret.sh: $name may hold only letters, digits, - and _ (it goes into URLs)" >&2; exit 64 ;;
  esac
done
need() { eval "printf '%s' \"\${$1}\""; }

# KEDA runs in its own namespace: it reaches an in-cluster Redis by its namespaced name.
case $redis_host in
  *.*) keda_address=$redis_host:$redis_port ;;
  *) keda_address=$redis_host.$namespace.svc:$redis_port ;;
esac

acl=$(sh "$here/../redis/render-acl.sh")
keda_hash=$(printf '%s' "$REDIS_KEDA_PASSWORD" | sha256sum | cut -d' ' -f1)
keda_keys=""
for stream in discovered raw ingested cleaned enriched; do keda_keys="$keda_keys ~$prefix:$stream"; done

redis_url() { printf 'redis://%s:%s@%s:%s/0' "$1" "$(need "$2")" "$redis_host" "$redis_port"; }

cat <<EOF
apiVersion: v1
kind: Secret
metadata:
  name: newsflow-secrets
  namespace: $namespace
  labels:
    app.kubernetes.io/part-of: newsflow
type: Opaque
stringData:
  api-token: "$(need NEWSFLOW_API_TOKEN)"
  read-token: "$(need NEWSFLOW_READ_TOKEN)"
  operator-token: "$(need NEWSFLOW_OPERATOR_TOKEN)"
  redis-url-fetch: "$(redis_url fetch REDIS_FETCH_PASSWORD)"
  redis-url-ingest: "$(redis_url ingest REDIS_INGEST_PASSWORD)"
  redis-url-clean: "$(redis_url clean REDIS_CLEAN_PASSWORD)"
  redis-url-enrich: "$(redis_url enrich REDIS_ENRICH_PASSWORD)"
  redis-url-publish: "$(redis_url publish REDIS_PUBLISH_PASSWORD)"
  redis-url-api: "$(redis_url api REDIS_API_PASSWORD)"
  redis-operator-password: "$(need REDIS_OPERATOR_PASSWORD)"
  storage-url: "postgresql://$pg_user:$(need POSTGRES_PASSWORD)@$pg_host:$pg_port/$pg_db"
  storage-url-api: "postgresql://$pg_api_user:$(need POSTGRES_API_PASSWORD)@$pg_host:$pg_port/$pg_db"
  postgres-password: "$(need POSTGRES_PASSWORD)"
  postgres-api-password: "$(need POSTGRES_API_PASSWORD)"
  keda-redis-address: "$keda_address"
  keda-redis-username: keda
  keda-redis-password: "$(need REDIS_KEDA_PASSWORD)"
  users.acl: |
$(printf '%s\n' "$acl" | sed 's/^/    /')
    user keda on #$keda_hash resetchannels -@all +@connection +xinfo +xpending +xlen -@dangerous$keda_keys
EOF
