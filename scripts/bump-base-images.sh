#!/usr/bin/env bash
# Re-pins the Dockerfiles' base images: every `ARG <NAME>_IMAGE=<image>:<tag>@sha256:<digest>`
# in Dockerfile.* and kind/Dockerfile.* gets the digest the registry serves for its tag now (the
# multi-platform index digest, so linux/amd64 and linux/arm64 both resolve). Give NAME=<image:tag>
# to move a tag as well, e.g.
#   scripts/bump-base-images.sh                                   # same tags, fresh digests
#   scripts/bump-base-images.sh NODE_IMAGE=node:24.21.0-bookworm-slim PYTHON_IMAGE=python:3.11.16-slim-bookworm
# Needs `docker buildx` (docker buildx imagetools inspect) or `crane` (crane digest); no pull.
# The kind node image is not handled here: its tag@digest pair comes from kind's release notes
# (kind/cluster.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."

files=()
for f in Dockerfile.* kind/Dockerfile.*; do
  if [ -f "$f" ]; then files+=("$f"); fi
done
[ "${#files[@]}" -gt 0 ] || { echo "bump-base-images: no Dockerfile found" >&2; exit 1; }

resolve() { # image:tag -> sha256:<index digest>
  local digest
  if command -v crane >/dev/null 2>&1; then
    digest="$(crane digest "$1")"
  else
    digest="$(docker buildx imagetools inspect --format '{{json .Manifest}}' "$1" |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["digest"])')"
  fi
  case "$digest" in
    sha256:????????????????????????????????????????????????????????????????) printf '%s' "$digest" ;;
    *) echo "bump-base-images: no digest for $1 (got '$digest')" >&2; return 1 ;;
  esac
}

# NAME=image:tag overrides from the command line, as "NAME image:tag" lines.
overrides=""
for arg in "$@"; do
  case "$arg" in
    *_IMAGE=*:*) overrides="${overrides}${arg%%=*} ${arg#*=}"$'\n' ;;
    *) echo "usage: $0 [NAME_IMAGE=image:tag ...]" >&2; exit 2 ;;
  esac
done

# Every distinct NAME=ref pinned by digest (the same NAME may appear in several files; an ARG
# without a digest, like kind's GATEWAY_IMAGE of the locally built gateway, is left alone).
names="$(sed -n 's/^ARG \([A-Z_]*_IMAGE\)=.*@sha256:.*/\1/p' "${files[@]}" | sort -u)"
for name in $names; do
  current="$(sed -n "s/^ARG ${name}=\(.*\)/\1/p" "${files[@]}" | head -n 1)"
  ref="${current%@*}"
  wanted="$(printf '%s' "$overrides" | awk -v n="$name" '$1 == n { print $2 }' | tail -n 1)"
  if [ -n "$wanted" ]; then ref="$wanted"; fi
  digest="$(resolve "$ref")"
  echo "$name=$ref@$digest"
  for f in "${files[@]}"; do
    sed -i.bak "s|^ARG ${name}=.*|ARG ${name}=${ref}@${digest}|" "$f" && rm -f "$f.bak"
  done
done
