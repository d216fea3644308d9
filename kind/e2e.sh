#!/usr/bin/env bash
# End-to-end check of llm-mcp-hub on kind: creates the cluster (or reuses one), builds and loads
# the images, deploys a stand-in Entra + Key Vault over TLS, installs the chart with its kind
# values (the chart's own service-account token projection, so the real Workload Identity + Key
# Vault code runs), then checks: the LLMProviders sync this run's values, a Key Vault rotation
# rolls the gateway, an operator restart rolls nothing, two operator replicas work,
# /health/tokens answers, an MCP tool call round-trips, the next answer runs on the rotated
# credential, a deleted gateway pod loses no committed turn, `helm test` passes and
# `helm uninstall` leaves nothing stuck. tests/node runs the same stages on a real node. See kind/README.md.
#
# Safe on a workstation: it talks to the cluster only through its own kubeconfig file
# (kind/out/kubeconfig) and context, never touches ~/.kube/config or the current context, and
# deletes the cluster at exit only when this run created it. Runs under bash 3.2 (macOS).
#
# Env: KIND_CLUSTER (default llm-mcp-hub), KEEP_CLUSTER=1 keeps a cluster this run created,
#      SKIP_BUILD=1 reuses images already loaded, HELM (default: helm, else `uv run helm`),
#      TIMEOUT (seconds per wait, default 300), POLL (seconds between checks, default 2),
#      LOCAL_PORT (port-forward, default 18000), E2E_OUT (scratch dir, default kind/out).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

CLUSTER="${KIND_CLUSTER:-llm-mcp-hub}"
CONTEXT="kind-${CLUSTER}"
HUB_NS="llm-mcp-hub"
AZ_NS="llm-mcp-hub-system"
RELEASE="llm-mcp-hub"
CHART="charts/llm-mcp-hub"
VALUES="$CHART/ci/kind-values.yaml"
OUT="${E2E_OUT:-kind/out}"
TIMEOUT="${TIMEOUT:-300}"
POLL="${POLL:-2}"
LOCAL_PORT="${LOCAL_PORT:-18000}"
TAG="e2e"
TENANT="66666666-7777-8888-9999-000000000000"
FAKE_HOST="fake-azure.${AZ_NS}.svc"
GATEWAY="${RELEASE}-gateway"
OPERATOR="${RELEASE}-operator"
MCP_HOST="${GATEWAY}.${HUB_NS}.svc"
# Fake credentials, unique per run so a re-run can tell its own values from the last run's.
RUN_ID="$(date +%s)-$$"
CLAUDE_V1="sk-ant-oat01-kind-e2e-first-${RUN_ID}"
CLAUDE_V2="sk-ant-oat01-kind-e2e-rotated-${RUN_ID}"
CLAUDE_V3="sk-ant-oat01-kind-e2e-ha-${RUN_ID}"
GEMINI_V1="{\"access_token\":\"ya29.kind-e2e-${RUN_ID}\",\"refresh_token\":\"1//kind-e2e\",\"token_type\":\"Bearer\",\"expiry_date\":4102444800000}"

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
# This run's own kubeconfig: kind, kubectl and helm never read or write the user's.
KUBECONFIG="$OUT/kubeconfig"
export KUBECONFIG
CREATED_CLUSTER=0
PF_PID=""
ADMIN_PF_PID=""

log() { printf '\n==> %s\n' "$*"; }

k() { kubectl --kubeconfig "$KUBECONFIG" --context "$CONTEXT" "$@"; }

if [ -n "${HELM:-}" ]; then
  read -r -a helm_cmd <<<"$HELM"
elif command -v helm >/dev/null 2>&1; then
  helm_cmd=(helm)
else
  helm_cmd=(uv run --frozen helm)
fi
helm_() { "${helm_cmd[@]}" --kubeconfig "$KUBECONFIG" --kube-context "$CONTEXT" "$@"; }

fail() {
  printf '\nFAIL: %s\n' "$*" >&2
  k -n "$HUB_NS" get llmproviders,deploy,pods,secrets -o wide >&2 || true
  k -n "$HUB_NS" logs "deploy/$OPERATOR" --tail=50 >&2 || true
  exit 1
}

cleanup() {
  if [ -n "$PF_PID" ]; then kill "$PF_PID" 2>/dev/null || true; fi
  if [ -n "$ADMIN_PF_PID" ]; then kill "$ADMIN_PF_PID" 2>/dev/null || true; fi
  if [ "$CREATED_CLUSTER" = "1" ] && [ "${KEEP_CLUSTER:-0}" != "1" ]; then
    kind delete cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null 2>&1 || fail "needs $1 on PATH (see kind/README.md)"; }
for tool in kind kubectl docker openssl curl python3; do need "$tool"; done

# Poll until a command succeeds, or fail after TIMEOUT seconds.
wait_for() {
  local what="$1"
  shift
  local deadline=$((SECONDS + TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || fail "timed out waiting for: $what"
    sleep "$POLL"
  done
}

secret_value() { # namespace secret key -> decoded value (kept in variables, never printed)
  k -n "$1" get secret "$2" -o "jsonpath={.data.${3//./\\.}}" | base64 -d
}
secret_is() { [ "$(secret_value "$HUB_NS" "$1" "$2")" = "$3" ]; }
secret_has() { secret_value "$HUB_NS" "$1" "$2" | grep -qF -- "$3"; }

template_annotation() { # deployment annotation-key
  k -n "$HUB_NS" get deploy "$1" -o json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["spec"]["template"]["metadata"].get("annotations",{}).get(sys.argv[1],""))' "$2"
}
template_annotations() { # deployment -> its pod-template annotations, as sorted JSON
  k -n "$HUB_NS" get deploy "$1" -o json |
    python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["spec"]["template"]["metadata"].get("annotations",{}), sort_keys=True))'
}
generation() { k -n "$HUB_NS" get deploy "$1" -o jsonpath='{.metadata.generation}'; }

synced_since() { # provider epoch-seconds: its status.lastSyncTime is at or after that moment
  local at
  at="$(k -n "$HUB_NS" get llmprovider "$1" -o jsonpath='{.status.lastSyncTime}')"
  [ -n "$at" ] && python3 -c 'import sys, datetime as d
t = d.datetime.fromisoformat(sys.argv[1].replace("Z", "+00:00"))
sys.exit(0 if t.timestamp() >= float(sys.argv[2]) else 1)' "$at" "$2"
}

settle() { # provider: wait for a sync pass that began after now, so no roll for an older value is still on its way
  local since=$(($(date +%s) + 1))
  wait_for "a fresh sync of llmprovider/$1" synced_since "$1" "$since"
}

put_claude_version() { # value: a new version of claude-oauth-token, PUT from inside the fake's pod
  k -n "$AZ_NS" exec -i deploy/fake-azure -- python - "$TENANT" "$1" <<'PY'
import base64, json, ssl, sys, urllib.parse, urllib.request
tenant, value = sys.argv[1], sys.argv[2]
def part(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
# The stand-in Entra verifies the client assertion is a JWT (as Entra does); with no federation
# configured it needs no signature, so an unsigned one shaped like a projected token will do.
claims = {"aud": ["api://AzureADTokenExchange"], "sub": "kind-e2e", "exp": 4102444800}
assertion = ".".join([part({"alg": "RS256", "typ": "JWT"}), part(claims), "c2ln" * 8])
ctx = ssl.create_default_context(cafile="/ca/ca.crt")
base = "https://localhost:8443"
ctx.check_hostname = False  # the certificate names the Service, not localhost
form = urllib.parse.urlencode({
    "grant_type": "client_credentials", "client_id": "kind-e2e",
    "scope": "https://vault.azure.net/.default",
    "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    "client_assertion": assertion}).encode()
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
}

rotate_and_expect_one_roll() { # new-value: PUT it, wait for the Secret and exactly one gateway roll
  local before_hash before_gen after_gen
  before_hash="$(template_annotation "$GATEWAY" llm-mcp-hub.io/claude-hash)"
  before_gen="$(generation "$GATEWAY")"
  put_claude_version "$1"
  wait_for "claude-credentials to hold the rotated value" secret_is claude-credentials CLAUDE_CODE_OAUTH_TOKEN "$1"
  hash_moved() { [ "$(template_annotation "$GATEWAY" llm-mcp-hub.io/claude-hash)" != "$before_hash" ]; }
  wait_for "gateway pod-template annotation llm-mcp-hub.io/claude-hash to change" hash_moved
  k -n "$HUB_NS" rollout status "deploy/$GATEWAY" --timeout "${TIMEOUT}s" >/dev/null
  after_gen="$(generation "$GATEWAY")"
  [ "$after_gen" -eq $((before_gen + 1)) ] ||
    fail "one rotation should roll the gateway once (generation $before_gen -> $after_gen)"
}

# ---------------------------------------------------------------------------- cluster + images
log "cluster $CLUSTER (kubeconfig $KUBECONFIG, context $CONTEXT)"
existing=0
for name in $(kind get clusters 2>/dev/null || true); do
  if [ "$name" = "$CLUSTER" ]; then existing=1; fi
done
if [ "$existing" = "1" ]; then
  kind get kubeconfig --name "$CLUSTER" >"$KUBECONFIG"
else
  kind create cluster --name "$CLUSTER" --config kind/cluster.yaml --kubeconfig "$KUBECONFIG" --wait 120s
  CREATED_CLUSTER=1
fi
k get --raw /readyz >/dev/null || fail "the API server of $CONTEXT does not answer"

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
# A CA that says it is one (basicConstraints CA:TRUE, keyCertSign) rather than relying on the
# openssl default config; works with OpenSSL and LibreSSL.
cat >"$OUT/ca.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = llm-mcp-hub kind CA
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -config "$OUT/ca.cnf" -extensions v3_ca \
  -keyout "$OUT/ca.key" -out "$OUT/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=$FAKE_HOST" \
  -keyout "$OUT/tls.key" -out "$OUT/tls.csr" 2>/dev/null
cat >"$OUT/server.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:$FAKE_HOST, DNS:$FAKE_HOST.cluster.local, DNS:fake-azure.$AZ_NS, DNS:fake-azure
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
EOF
openssl x509 -req -in "$OUT/tls.csr" -CA "$OUT/ca.crt" -CAkey "$OUT/ca.key" -CAcreateserial \
  -days 2 -extfile "$OUT/server.ext" -out "$OUT/tls.crt" 2>/dev/null
openssl verify -CAfile "$OUT/ca.crt" "$OUT/tls.crt" >/dev/null || fail "the fake's certificate does not verify"

for ns in "$AZ_NS" "$HUB_NS"; do
  k create namespace "$ns" --dry-run=client -o yaml | k apply -f - >/dev/null
  # The API server itself refuses any pod of ours that is not Pod Security "restricted".
  k label namespace "$ns" --overwrite pod-security.kubernetes.io/enforce=restricted >/dev/null
done
# A re-run makes a new CA: an operator that is already running must be restarted to trust it.
previous_ca="$(k -n "$HUB_NS" get configmap fake-azure-ca -o jsonpath='{.data.ca\.crt}' 2>/dev/null || true)"
k -n "$AZ_NS" create secret tls fake-azure-tls --cert "$OUT/tls.crt" --key "$OUT/tls.key" \
  --dry-run=client -o yaml | k apply -f - >/dev/null
for ns in "$AZ_NS" "$HUB_NS"; do
  k -n "$ns" create configmap fake-azure-ca --from-file "ca.crt=$OUT/ca.crt" \
    --dry-run=client -o yaml | k apply -f - >/dev/null
done
ca_fingerprint="$(openssl x509 -in "$OUT/ca.crt" -noout -fingerprint -sha256 | tr -d ':' | sed 's/.*=//' | cut -c1-16)"

log "fake Entra + Key Vault in $AZ_NS"
# Recreate: the fake keeps its vault in memory, so two pods at once would be two vaults.
python3 - "$AZ_NS" "$TAG" "$TENANT" "$ca_fingerprint" "claude-oauth-token=$CLAUDE_V1" "gemini-oauth-creds=$GEMINI_V1" <<'PY' | k apply -f - >/dev/null
import json, sys
ns, tag, tenant, ca, *seeds = sys.argv[1:]
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
    "spec": {"replicas": 1, "strategy": {"type": "Recreate"},
             "selector": {"matchLabels": labels}, "template": {
        "metadata": {"labels": labels, "annotations": {"llm-mcp-hub.io/e2e-ca": ca}},
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
k -n "$AZ_NS" rollout status deploy/fake-azure --timeout "${TIMEOUT}s"

# ---------------------------------------------------------------------------- the hub
log "helm install $RELEASE"
if ! k get crd llmproviders.llm-mcp-hub.io >/dev/null 2>&1; then
  # The chart creates the LLMProvider CRD, and Helm maps every object before it creates any:
  # LLMProviders need their CRD from an earlier step, so a fresh cluster gets one without them.
  helm_ upgrade --install "$RELEASE" "$CHART" --namespace "$HUB_NS" -f "$VALUES" \
    --set operator.replicaCount=1 --set-json 'providers=[]'
fi
helm_ upgrade --install "$RELEASE" "$CHART" --namespace "$HUB_NS" -f "$VALUES" \
  --set operator.replicaCount=1
if [ -n "$previous_ca" ] && [ "$previous_ca" != "$(cat "$OUT/ca.crt")" ]; then
  log "new CA: restarting the operator so it trusts it"
  k -n "$HUB_NS" rollout restart "deploy/$OPERATOR" >/dev/null
  k -n "$HUB_NS" rollout status "deploy/$OPERATOR" --timeout "${TIMEOUT}s"
fi

log "LLMProviders sync this run's values and their Secrets appear"
# The values are this run's own: on a re-run the Secrets still hold the last run's until the
# operator has re-synced, so wait for the values, not for a phase that is already Ready.
wait_for "claude-credentials to hold this run's Key Vault value" \
  secret_is claude-credentials CLAUDE_CODE_OAUTH_TOKEN "$CLAUDE_V1"
wait_for "gemini-credentials to hold this run's oauth_creds.json" \
  secret_has gemini-credentials oauth_creds.json "ya29.kind-e2e-${RUN_ID}"
for provider in claude gemini; do
  wait_for "llmprovider/$provider Ready" \
    k -n "$HUB_NS" wait "llmprovider/$provider" --for=jsonpath='{.status.phase}'=Ready --timeout=5s
done
# The Secret is written before the gateway is patched: let that pass finish before counting rolls.
settle claude
secret_value "$HUB_NS" gemini-credentials oauth_creds.json | python3 -c 'import json,sys; assert json.load(sys.stdin)["refresh_token"]' ||
  fail "gemini-credentials does not hold oauth_creds.json"
for s in claude-credentials gemini-credentials; do
  [ -n "$(secret_value "$HUB_NS" "$s" expires_at)" ] || fail "$s has no expires_at"
done
k -n "$HUB_NS" rollout status "deploy/$GATEWAY" --timeout "${TIMEOUT}s"

log "rotation in Key Vault rolls the gateway"
rotate_and_expect_one_roll "$CLAUDE_V2"

log "an operator restart rolls nothing"
before_gen="$(generation "$GATEWAY")"
before_annotations="$(template_annotations "$GATEWAY")"
k -n "$HUB_NS" rollout restart "deploy/$OPERATOR" >/dev/null
k -n "$HUB_NS" rollout status "deploy/$OPERATOR" --timeout "${TIMEOUT}s"
# One replica rolls with Recreate: from here on, every sync is the new operator's.
restarted_at="$(date +%s)"
for provider in claude gemini; do
  wait_for "the restarted operator to sync llmprovider/$provider" synced_since "$provider" "$restarted_at"
done
[ "$(generation "$GATEWAY")" = "$before_gen" ] || fail "an operator restart rolled the gateway"
[ "$(template_annotations "$GATEWAY")" = "$before_annotations" ] ||
  fail "an operator restart changed the gateway's pod template"
secret_is claude-credentials CLAUDE_CODE_OAUTH_TOKEN "$CLAUDE_V2" || fail "an operator restart changed claude-credentials"

log "two operator replicas (Lease leader election)"
helm_ upgrade "$RELEASE" "$CHART" --namespace "$HUB_NS" -f "$VALUES" \
  --set operator.replicaCount=2
k -n "$HUB_NS" rollout status "deploy/$OPERATOR" --timeout "${TIMEOUT}s"
[ "$(k -n "$HUB_NS" get deploy "$OPERATOR" -o jsonpath='{.status.readyReplicas}')" = "2" ] ||
  fail "two operator replicas are not both Ready"
settle claude
rotate_and_expect_one_roll "$CLAUDE_V3"

# ---------------------------------------------------------------------------- gateway checks
log "port-forward svc/$GATEWAY to 127.0.0.1:$LOCAL_PORT"
# kubectl itself in the background (not the k function's subshell), so $! is the one to kill.
kubectl --kubeconfig "$KUBECONFIG" --context "$CONTEXT" -n "$HUB_NS" port-forward "svc/$GATEWAY" "$LOCAL_PORT:8000" \
  >"$OUT/port-forward.log" 2>&1 &
PF_PID=$!
BASE="http://127.0.0.1:$LOCAL_PORT"
wait_for "gateway /health/live through the port-forward" curl -fsS "$BASE/health/live"

log "/health/tokens on the admin port (not on the callers' Service), as the operator reads it"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health/tokens")" = "404" ] ||
  fail "/health/tokens answers on the callers' Service"
ADMIN_LOCAL_PORT=$((LOCAL_PORT + 1))
kubectl --kubeconfig "$KUBECONFIG" --context "$CONTEXT" -n "$HUB_NS" port-forward "svc/$GATEWAY-replicas" "$ADMIN_LOCAL_PORT:9090" \
  >"$OUT/port-forward-admin.log" 2>&1 &
ADMIN_PF_PID=$!
ADMIN="http://127.0.0.1:$ADMIN_LOCAL_PORT"
wait_for "gateway /metrics through the admin port-forward" curl -fsS "$ADMIN/metrics"
curl -fsS "$ADMIN/health/tokens" | python3 -c '
import json, sys
body = json.load(sys.stdin)
providers = body.get("providers", body)
for name in ("claude", "gemini"):
    status = providers[name]["status"]
    assert status in ("valid", "warning"), f"{name}: {status}"
    print(name, status, providers[name].get("days_remaining"))
' || fail "/health/tokens does not report both providers valid"

log "MCP tools/call claude_chat (Host: $MCP_HOST)"
mcp_post() { # body [extra curl args...]: POST to the MCP endpoint with this run's headers
  local body="$1"
  shift
  curl "$@" -H "Host: $MCP_HOST" -H "Content-Type: application/json" \
    -H "Accept: application/json, text/event-stream" -d "$body" "$BASE$MCP_PATH"
}
# The mount may redirect /mcp to /mcp/ (307); use whichever path answers the POST itself.
MCP_PATH="/mcp"
init='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"kind-e2e","version":"1"}}}'
code="$(mcp_post "$init" -s -o /dev/null -w '%{http_code}')"
if [ "$code" = "307" ] || [ "$code" = "308" ]; then MCP_PATH="/mcp/"; fi
mcp_post "$init" -fsS -D "$OUT/mcp-init.headers" -o "$OUT/mcp-init.body" ||
  fail "MCP initialize was refused (Host allow-list?)"
session="$(tr -d '\r' <"$OUT/mcp-init.headers" | awk -F': ' 'tolower($1)=="mcp-session-id"{print $2}')"
# No optional-header array here: expanding an empty array is an unbound-variable error under
# bash 3.2 with set -u.
mcp_post '{"jsonrpc":"2.0","method":"notifications/initialized"}' -fsS -o /dev/null \
  -H "Mcp-Session-Id: $session"
prompt="kind-e2e-ping-$RANDOM"
call="{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"claude_chat\",\"arguments\":{\"prompt\":\"$prompt\"}}}"
mcp_post "$call" -fsS -H "Mcp-Session-Id: $session" >"$OUT/mcp-call.body"
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
kill "$ADMIN_PF_PID" 2>/dev/null || true
ADMIN_PF_PID=""

rest_chat() { # prompt [session-id] -> the answer's JSON (POST /v1/chat through the port-forward)
  local body="{\"provider\":\"claude\",\"prompt\":\"$1\"${2:+,\"session_id\":\"$2\"}}"
  curl -fsS -H "Content-Type: application/json" -d "$body" "$BASE/v1/chat"
}
answer_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

log "the next answer runs on the rotated credential"
# The fake CLI reports the first 8 hex digits of its token's SHA-256 (FAKE_CLI_TOKEN_FINGERPRINT
# in kind-values.yaml), never the token: compare with this run's last rotated value.
fingerprint="$(printf '%s' "$CLAUDE_V3" | python3 -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest()[:8])')"
rest_chat "kind-e2e-rotated-$RANDOM" | answer_field text | grep -F "token=present:$fingerprint" >/dev/null ||
  fail "the gateway's CLI does not run on the rotated claude-oauth-token"

log "a deleted gateway pod loses no committed turn (sessions in the Redis pod)"
turn_one="kind-e2e-turn-one-$RANDOM"
session_id="$(rest_chat "$turn_one" | answer_field session_id)"
kill "$PF_PID" 2>/dev/null || true
k -n "$HUB_NS" delete pod -l "app.kubernetes.io/instance=$RELEASE,app.kubernetes.io/component=gateway" \
  --wait=true --timeout "${TIMEOUT}s" >/dev/null
k -n "$HUB_NS" rollout status "deploy/$GATEWAY" --timeout "${TIMEOUT}s" >/dev/null
kubectl --kubeconfig "$KUBECONFIG" --context "$CONTEXT" -n "$HUB_NS" port-forward "svc/$GATEWAY" "$LOCAL_PORT:8000" \
  >"$OUT/port-forward-2.log" 2>&1 &
PF_PID=$!
wait_for "gateway /health/live through a new port-forward" curl -fsS "$BASE/health/live"
# FAKE_CLI_ECHO_CONTEXT: the answer shows the conversation the new pod resumed from Redis.
rest_chat "kind-e2e-turn-two-$RANDOM" "$session_id" | answer_field text | grep -F "$turn_one" >/dev/null ||
  fail "the session lost its first turn when the gateway pod was deleted"
kill "$PF_PID" 2>/dev/null || true
PF_PID=""

log "helm test"
helm_ test "$RELEASE" --namespace "$HUB_NS" --timeout "${TIMEOUT}s"

# ---------------------------------------------------------------------------- uninstall
log "helm uninstall leaves nothing stuck"
helm_ uninstall "$RELEASE" --namespace "$HUB_NS" --wait --timeout "${TIMEOUT}s"
nothing_left() { # no LLMProvider, no Secret the operator wrote, no pod of the release
  [ -z "$(k -n "$HUB_NS" get llmproviders -o name)" ] &&
    [ -z "$(k -n "$HUB_NS" get secrets -l app.kubernetes.io/managed-by=llm-mcp-hub-operator -o name)" ] &&
    [ -z "$(k -n "$HUB_NS" get pods -l "app.kubernetes.io/instance=$RELEASE" -o name)" ]
}
wait_for "the release's LLMProviders, Secrets and pods to be gone" nothing_left
k delete namespace "$HUB_NS" --wait --timeout "${TIMEOUT}s" >/dev/null ||
  fail "namespace $HUB_NS did not go away (a finalizer left behind?)"

log "PASS: llm-mcp-hub end-to-end on kind"
