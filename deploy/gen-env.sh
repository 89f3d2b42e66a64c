#!/bin/sh
# Print .env.example with every empty secret filled with a fresh random value:  sh deploy/gen-env.sh > .env
# Values are URL-safe (hex), since they go into redis:// and postgresql:// URLs.
set -eu
example=${1:-$(dirname "$0")/../.env.example}
while IFS= read -r line || [ -n "$line" ]; do
  case $line in
    *PASSWORD=|*_TOKEN=) printf '%s%s\n' "$line" "$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" ;;
    *) printf '%s\n' "$line" ;;
  esac
done < "$example"
