#!/usr/bin/env bash
# Release tag logic, shared by .github/workflows/release.yml and tests/ship: a tag vX.Y.Z
# releases images X.Y.Z and chart X.Y.Z only when the chart's version and appVersion and the
# project's version all say X.Y.Z, so the chart's default image tag (its appVersion) always
# names images that exist. Prints GITHUB_OUTPUT lines: version=…, registry=ghcr.io/<owner>.
# Usage: scripts/release-version.sh <tag> <repository owner>
set -euo pipefail
cd "$(dirname "$0")/.."

tag="${1:?usage: release-version.sh <tag> <owner>}"
owner="${2:?usage: release-version.sh <tag> <owner>}"

case "$tag" in
  v[0-9]*.[0-9]*.[0-9]*) version="${tag#v}" ;;
  *) echo "release-version: tag '$tag' is not vX.Y.Z" >&2; exit 1 ;;
esac

field() { # file key -> the top-level scalar, quotes stripped
  awk -v key="$2" -F': *' '$1 == key { gsub(/["'\'' ]/, "", $2); print $2; exit }' "$1"
}
chart_version="$(field charts/llm-mcp-hub/Chart.yaml version)"
app_version="$(field charts/llm-mcp-hub/Chart.yaml appVersion)"
project_version="$(awk -F'"' '/^version = /{print $2; exit}' pyproject.toml)"

for pair in "Chart.yaml version:$chart_version" "Chart.yaml appVersion:$app_version" \
  "pyproject.toml version:$project_version"; do
  if [ "${pair##*:}" != "$version" ]; then
    echo "release-version: tag $tag but ${pair%:*} is '${pair##*:}'; bump them together" >&2
    exit 1
  fi
done

printf 'version=%s\n' "$version"
printf 'registry=ghcr.io/%s\n' "$(printf '%s' "$owner" | tr '[:upper:]' '[:lower:]')"
