#!/usr/bin/env bash
# End-to-end check of llm-mcp-hub on kind: creates the cluster, builds and loads the images,
# deploys a stand-in Entra + Key Vault over TLS, installs the chart with its kind values (the
# chart's own service-account token projection, so the real Workload Identity + Key Vault code
# runs), then checks: the LLMProviders sync, the Secrets appear, a Key Vault rotation rolls the
# gateway, /health/tokens answers, and an MCP tool call round-trips. See kind/README.md.
#
# Env: KIND_CLUSTER (default llm-mcp-hub), KEEP_CLUSTER=1 keeps the cluster afterwards,
#      SKIP_BUILD=1 reuses images already loaded, HELM (default: helm, else `uv run helm`),
#      TIMEOUT (seconds per wait, default 300), LOCAL_PORT (port-forward, default 18000).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

CLUSTER="${KIND_CLUSTER:-llm-mcp-hub}"
HUB_NS="llm-mcp-hub"
AZ_NS="llm-mcp-hub-system"
RELEASE="llm-mcp-hub"
CHART="charts/llm-mcp-hub"
VALUES="$CHART/ci/kind-values.yaml"
OUT="kind/out"
TIMEOUT="${TIMEOUT:-300}"
LOCAL_PORT="${LOCAL_PORT:-18000}"
TAG="e2e"
TENANT="66666666-7777-8888-9999-000000000000"
FAKE_HOST="fake-azure.${AZ_NS}.svc"
GATEWAY="${RELEASE}-gateway"
MCP_HOST="${GATEWAY}.${HUB_NS}.svc"
# Fake credentials: never real tokens. The fake CLIs accept anything.
CLAUDE_V1="sk-ant-oat01-kind-e2e-first-$(date +%s)"
CLAUDE_V2="sk-ant-oat01-kind-e2e-rotated-$(date +%s)"
GEMINI_V1='{"access_token":"ya29.kind-e2e","refresh_token":"1//kind-e2e","token_type":"Bearer","expiry_date":4102444800000}'

PF_PID=""

log() { printf '\n==> %s\n' "$*"; }
fail() {
  printf '\nFAIL: %s\n' "$*" >&2
  kubectl -n "$HUB_NS" get llmproviders,deploy,pods,secrets -o wide >&2 || true
  kubectl -n "$HUB_NS" logs "deploy/${RELEASE}-operator" --tail=50 >&2 || true
  exit 1
}

cleanup() {
  if [ -n "$PF_PID" ]; then kill "$PF_PID" 2>/dev/null || true; fi
  if [ "${KEEP_CLUSTER:-0}" != "1" ]; then kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

if [ -n "${HELM:-}" ]; then
  read -r -a helm_cmd <<<"$HELM"
elif command -v helm >/dev/null 2>&1; then
  helm_cmd=(helm)
else
  helm_cmd=(uv run --frozen helm)
fi
helm_() { "${helm_cmd[@]}" "$@"; }

need() { command -v "$1" >/dev/null 2>&1 || fail "needs $1 on PATH (see kind/README.md)"; }
for tool in kind kubectl docker openssl curl python3; do need "$tool"; done

# Poll until a command succeeds, or fail after TIMEOUT seconds.
wait_for() {
  local what="$1"
  shift
  local deadline=$((SECONDS + TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || fail "timed out waiting for: $what"
    sleep 2
  done
}

secret_value() { # namespace secret key -> decoded value (kept in variables, never printed)
  kubectl -n "$1" get secret "$2" -o "jsonpath={.data.${3//./\\.}}" | base64 -d
}

template_annotation() { # deployment annotation-key
  kubectl -n "$HUB_NS" get deploy "$1" -o json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["spec"]["template"]["metadata"].get("annotations",{}).get(sys.argv[1],""))' "$2"
}

# ---------------------------------------------------------------------------- cluster + images
log "cluster $CLUSTER"
if ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --config kind/cluster.yaml --wait 120s
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null

if [ "${SKIP_BUILD:-0}" != "1" ]; then
  log "building images"
  docker build -f Dockerfile.operator -t "llm-mcp-hub-operator:$TAG" .
  docker build -f Dockerfile.gateway -t "llm-mcp-hub-gateway:$TAG" .
  docker build -f kind/Dockerfile.gateway-fakes --build-arg "GATEWAY_IMAGE=llm-mcp-hub-gateway:$TAG" \
    -t "llm-mcp-hub-gateway-fakes:$TAG" .
  docker build -f kind/Dockerfile.fake-azure -t "llm-mcp-hub-fake-azure:$TAG" .
  for image in llm-mcp-hub-operator llm-mcp-hub-gateway-fakes llm-mcp-hub-fake-azure; do
    kind load docker-image --name "$CLUSTER" "$image:$TAG"
  done
fi

# ---------------------------------------------------------------------------- stand-in Azure
log "TLS for $FAKE_HOST"
mkdir -p "$OUT"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=llm-mcp-hub kind CA" \
  -keyout "$OUT/ca.key" -out "$OUT/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=$FAKE_HOST" \
  -keyout "$OUT/tls.key" -out "$OUT/tls.csr" 2>/dev/null
printf 'subjectAltName=DNS:%s,DNS:%s.cluster.local,DNS:fake-azure.%s,DNS:fake-azure\nextendedKeyUsage=serverAuth\n' \
  "$FAKE_HOST" "$FAKE_HOST" "$AZ_NS" >"$OUT/san.ext"
openssl x509 -req -in "$OUT/tls.csr" -CA "$OUT/ca.crt" -CAkey "$OUT/ca.key" -CAcreateserial \
  -days 2 -extfile "$OUT/san.ext" -out "$OUT/tls.crt" 2>/dev/null

for ns in "$AZ_NS" "$HUB_NS"; do
  kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  # The API server itself refuses any pod of ours that is not Pod Security "restricted".
  kubectl label namespace "$ns" --overwrite pod-security.kubernetes.io/enforce=restricted >/dev/null
done
kubectl -n "$AZ_NS" create secret tls fake-azure-tls --cert "$OUT/tls.crt" --key "$OUT/tls.key" \
  --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n "$AZ_NS" create configmap fake-azure-ca --from-file "ca.crt=$OUT/ca.crt" \
  --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n "$HUB_NS" create configmap fake-azure-ca --from-file "ca.crt=$OUT/ca.crt" \
  --dry-run=client -o yaml | kubectl apply -f - >/dev/null

log "fake Entra + Key Vault in $AZ_NS"
python3 - "$AZ_NS" "$TAG" "$TENANT" "claude-oauth-token=$CLAUDE_V1" "gemini-oauth-creds=$GEMINI_V1" <<'PY' | kubectl apply -f - >/dev/null
import json, sys
ns, tag, tenant, *seeds = sys.argv[1:]
labels = {"app.kubernetes.io/name": "fake-azure"}
args = ["--host", "0.0.0.0", "--port", "8443", "--cert-file", "/tls/tls.crt",
        "--key-file", "/tls/tls.key", "--tenant", tenant]
for seed in seeds:
    args += ["--seed", seed]
restricted = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
              "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
deployment = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "fake-azure", "namespace": ns, "labels": labels},
    "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
        "metadata": {"labels": labels},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": {"runAsUser": 10001, "runAsNonRoot": True,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "fake-azure", "image": f"llm-mcp-hub-fake-azure:{tag}",
                "imagePullPolicy": "Never", "args": args,
                "ports": [{"name": "https", "containerPort": 8443}],
                "readinessProbe": {"tcpSocket": {"port": "https"}, "periodSeconds": 2},
                "securityContext": restricted,
                "volumeMounts": [{"name": "tls", "mountPath": "/tls", "readOnly": True},
                                 {"name": "ca", "mountPath": "/ca", "readOnly": True}],
            }],
            "volumes": [{"name": "tls", "secret": {"secretName": "fake-azure-tls"}},
                        {"name": "ca", "configMap": {"name": "fake-azure-ca"}}],
        }}}}
service = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "fake-azure", "namespace": ns, "labels": labels},
    "spec": {"selector": labels, "ports": [{"name": "https", "port": 8443, "targetPort": "https"}]},
}
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": [deployment, service]}))
PY
kubectl -n "$AZ_NS" rollout status deploy/fake-azure --timeout "${TIMEOUT}s"

# ---------------------------------------------------------------------------- the hub
log "helm install $RELEASE"
if ! kubectl get crd llmproviders.llm-mcp-hub.io >/dev/null 2>&1; then
  # The chart creates the LLMProvider CRD, and Helm maps every object before it creates any:
  # LLMProviders need their CRD from an earlier step, so a fresh cluster gets one without them.
  helm_ upgrade --install "$RELEASE" "$CHART" --namespace "$HUB_NS" -f "$VALUES" --set-json 'providers=[]'
fi
helm_ upgrade --install "$RELEASE" "$CHART" --namespace "$HUB_NS" -f "$VALUES"

log "LLMProviders sync and their Secrets appear"
for provider in claude gemini; do
  wait_for "llmprovider/$provider Ready" \
    kubectl -n "$HUB_NS" wait "llmprovider/$provider" --for=jsonpath='{.status.phase}'=Ready --timeout=5s
done
[ "$(secret_value "$HUB_NS" claude-credentials CLAUDE_CODE_OAUTH_TOKEN)" = "$CLAUDE_V1" ] ||
  fail "claude-credentials does not hold the Key Vault value"
secret_value "$HUB_NS" gemini-credentials oauth_creds.json | python3 -c 'import json,sys; assert json.load(sys.stdin)["refresh_token"]' ||
  fail "gemini-credentials does not hold oauth_creds.json"
for s in claude-credentials gemini-credentials; do
  [ -n "$(secret_value "$HUB_NS" "$s" expires_at)" ] || fail "$s has no expires_at"
done
kubectl -n "$HUB_NS" rollout status "deploy/$GATEWAY" --timeout "${TIMEOUT}s"

log "rotation in Key Vault rolls the gateway"
before_hash="$(template_annotation "$GATEWAY" llm-mcp-hub.io/claude-hash)"
before_gen="$(kubectl -n "$HUB_NS" get deploy "$GATEWAY" -o jsonpath='{.metadata.generation}')"
# PUT a new version from inside the fake's pod (token first, as a Key Vault client would).
kubectl -n "$AZ_NS" exec -i deploy/fake-azure -- python - "$TENANT" "$CLAUDE_V2" <<'PY'
import json, ssl, sys, urllib.parse, urllib.request
tenant, value = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context(cafile="/ca/ca.crt")
base = "https://localhost:8443"
ctx.check_hostname = False  # the certificate names the Service, not localhost
form = urllib.parse.urlencode({
    "grant_type": "client_credentials", "client_id": "kind-e2e",
    "scope": "https://vault.azure.net/.default",
    "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    "client_assertion": "kind-e2e"}).encode()
with urllib.request.urlopen(f"{base}/{tenant}/oauth2/v2.0/token", form, context=ctx) as r:
    token = json.load(r)["access_token"]
req = urllib.request.Request(
    f"{base}/secrets/claude-oauth-token?api-version=7.5", method="PUT",
    data=json.dumps({"value": value}).encode(),
    headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
with urllib.request.urlopen(req, context=ctx) as r:
    assert r.status == 200, r.status
    print("new version:", json.load(r)["id"].rsplit("/", 1)[-1])
PY
changed() { [ "$(template_annotation "$GATEWAY" llm-mcp-hub.io/claude-hash)" != "$before_hash" ]; }
wait_for "gateway pod-template annotation llm-mcp-hub.io/claude-hash to change" changed
after_gen="$(kubectl -n "$HUB_NS" get deploy "$GATEWAY" -o jsonpath='{.metadata.generation}')"
[ "$after_gen" -gt "$before_gen" ] || fail "the gateway Deployment did not roll"
kubectl -n "$HUB_NS" rollout status "deploy/$GATEWAY" --timeout "${TIMEOUT}s"
[ "$(secret_value "$HUB_NS" claude-credentials CLAUDE_CODE_OAUTH_TOKEN)" = "$CLAUDE_V2" ] ||
  fail "claude-credentials was not updated to the rotated value"

# ---------------------------------------------------------------------------- gateway checks
log "port-forward svc/$GATEWAY to 127.0.0.1:$LOCAL_PORT"
kubectl -n "$HUB_NS" port-forward "svc/$GATEWAY" "$LOCAL_PORT:8000" >"$OUT/port-forward.log" 2>&1 &
PF_PID=$!
BASE="http://127.0.0.1:$LOCAL_PORT"
wait_for "gateway /health/live through the port-forward" curl -fsS "$BASE/health/live"

log "/health/tokens"
curl -fsS "$BASE/health/tokens" | python3 -c '
import json, sys
body = json.load(sys.stdin)
providers = body.get("providers", body)
for name in ("claude", "gemini"):
    status = providers[name]["status"]
    assert status in ("valid", "warning"), f"{name}: {status}"
    print(name, status, providers[name].get("days_remaining"))
' || fail "/health/tokens does not report both providers valid"

log "MCP tools/call claude_chat (Host: $MCP_HOST)"
mcp_headers=(-H "Host: $MCP_HOST" -H "Content-Type: application/json" -H "Accept: application/json, text/event-stream")
# The mount may redirect /mcp to /mcp/ (307); use whichever path answers the POST itself.
MCP_PATH="/mcp"
init='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"kind-e2e","version":"1"}}}'
code="$(curl -s -o /dev/null -w '%{http_code}' "${mcp_headers[@]}" -d "$init" "$BASE$MCP_PATH")"
if [ "$code" = "307" ] || [ "$code" = "308" ]; then MCP_PATH="/mcp/"; fi
curl -fsS -D "$OUT/mcp-init.headers" -o "$OUT/mcp-init.body" "${mcp_headers[@]}" -d "$init" "$BASE$MCP_PATH" ||
  fail "MCP initialize was refused (Host allow-list?)"
session="$(tr -d '\r' <"$OUT/mcp-init.headers" | awk -F': ' 'tolower($1)=="mcp-session-id"{print $2}')"
session_header=()
if [ -n "$session" ]; then session_header=(-H "Mcp-Session-Id: $session"); fi
curl -fsS -o /dev/null "${mcp_headers[@]}" "${session_header[@]}" \
  -d '{"jsonrpc":"2.0","method":"notifications/initialized"}' "$BASE$MCP_PATH"
prompt="kind-e2e-ping-$RANDOM"
call="{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"claude_chat\",\"arguments\":{\"prompt\":\"$prompt\"}}}"
curl -fsS "${mcp_headers[@]}" "${session_header[@]}" -d "$call" "$BASE$MCP_PATH" >"$OUT/mcp-call.body"
python3 - "$OUT/mcp-call.body" "$prompt" <<'PY' || fail "MCP tools/call did not echo the prompt"
import json, sys
raw, prompt = open(sys.argv[1]).read(), sys.argv[2]
# Streamable HTTP answers either plain JSON or SSE ("data: {...}" lines).
lines = [l[5:].strip() for l in raw.splitlines() if l.startswith("data:")] or [raw]
result = next(json.loads(l) for l in lines if l.strip().startswith("{") and '"id"' in l)
assert "error" not in result, result["error"]
assert not result["result"].get("isError"), result["result"]
text = " ".join(c.get("text", "") for c in result["result"]["content"])
assert prompt in text, text
print("claude_chat answered:", text[:120])
PY

log "helm test"
helm_ test "$RELEASE" --namespace "$HUB_NS" --timeout "${TIMEOUT}s"

log "PASS: llm-mcp-hub end-to-end on kind"
