"""Recording stand-in for kind, docker, kubectl, helm and curl, as kind/e2e.sh calls them.

Each call appends ``{"tool", "argv", "kubeconfig_env"}`` to ``$STANDIN_LOG`` and answers from a
small JSON state (``$STANDIN_STATE``) that plays the cluster: kind clusters, the stand-in Key
Vault's values (from the seeds the script applies and the versions it PUTs), an "operator" that
copies them into the Secrets ``$STANDIN_LAG`` reads late and rolls the gateway when the Claude
value changes, helm releases and the gateway's HTTP answers. Faults to prove the script's checks:
``STANDIN_FAIL=<tool>`` (that tool exits 1), ``STANDIN_ROLL_ON_RESTART=1`` (an operator restart
rolls the gateway), ``STANDIN_STUCK=1`` (LLMProviders outlive ``helm uninstall``).
"""

from __future__ import annotations

import base64
import datetime as dt
import fcntl
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

State = dict[str, Any]
STDIN = ""  # what the script piped in, read before taking the state lock
OPERATOR_SECRETS = {
    "claude-credentials": ("CLAUDE_CODE_OAUTH_TOKEN", "kv_claude"),
    "gemini-credentials": ("oauth_creds.json", "kv_gemini"),
}


def load() -> State:
    path = Path(os.environ["STANDIN_STATE"])
    state: State = json.loads(path.read_text()) if path.exists() else {}
    state.setdefault("clusters", [])
    state.setdefault("configmaps", {})
    state.setdefault("secrets", {})
    state.setdefault("release", False)
    state.setdefault("generation", 1)
    state.setdefault("hash", "")
    state.setdefault("pending", 0)
    state.setdefault("replicas", 1)
    state.setdefault("last_sync", 0.0)
    state.setdefault("crd", state["release"])  # the chart creates the LLMProvider CRD
    return state


def save(state: State) -> None:
    Path(os.environ["STANDIN_STATE"]).write_text(json.dumps(state, indent=1))


def operator_sync(state: State) -> None:
    """What the operator would have done by now: Key Vault values into Secrets, a roll on change."""
    if not state["release"]:
        return
    if state["pending"] > 0:
        state["pending"] -= 1
        return
    for secret, (key, source) in OPERATOR_SECRETS.items():
        value = state.get(source)
        if value is None:
            continue
        old = state["secrets"].get(secret, {}).get(key)
        state["secrets"][secret] = {key: value, "expires_at": "2027-11-30T00:00:00Z"}
        if secret == "claude-credentials" and old != value:
            if old is not None:
                state["generation"] += 1
            state["hash"] = "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:12]
    state["last_sync"] = time.time()


def strip_globals(argv: list[str]) -> tuple[list[str], str]:
    """kubectl argv without --kubeconfig/--context/-n; returns (rest, namespace)."""
    rest: list[str] = []
    namespace = "default"
    it = iter(argv)
    for arg in it:
        if arg in ("--kubeconfig", "--context"):
            next(it)
        elif arg in ("-n", "--namespace"):
            namespace = next(it)
        elif arg.startswith(("--kubeconfig=", "--context=")):
            continue
        else:
            rest.append(arg)
    return rest, namespace


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def kubectl(argv: list[str], state: State) -> int:
    args, ns = strip_globals(argv)
    verb = args[0] if args else ""
    out = sys.stdout
    if verb == "config":
        return 0  # never expected: the test fails on any `config` call in the log
    if verb == "get" and args[1:3] == ["--raw", "/readyz"]:
        out.write("ok")
        return 0
    if verb == "create" and "--dry-run=client" in args:
        kind, name = args[1], args[2]
        obj: dict[str, Any] = {"kind": kind, "name": name, "namespace": ns}
        if kind == "configmap":
            source = next(a for a in args if a.startswith("ca.crt="))
            obj["data"] = {"ca.crt": Path(source.split("=", 1)[1]).read_text()}
        out.write(json.dumps(obj))
        return 0
    if verb == "apply":
        text = STDIN
        try:
            obj = json.loads(text)
        except ValueError:
            return 0
        if obj.get("kind") == "configmap":
            state["configmaps"][f"{obj['namespace']}/{obj['name']}"] = obj["data"]
        for item in obj.get("items", []):
            if item["kind"] == "Deployment" and item["metadata"]["name"] == "fake-azure":
                container = item["spec"]["template"]["spec"]["containers"][0]
                cargs = container["args"]
                for i, a in enumerate(cargs):
                    if a == "--seed":
                        name, value = cargs[i + 1].split("=", 1)
                        state["kv_claude" if name.startswith("claude") else "kv_gemini"] = value
                state["pending"] = int(os.environ.get("STANDIN_LAG", "0"))
        return 0
    if verb in ("label", "wait", "logs"):
        return 0 if verb != "wait" or state["release"] else 1
    if verb == "rollout":
        if args[1] == "restart" and args[2].endswith("-operator"):
            state["restarts"] = state.get("restarts", 0) + 1
            if os.environ.get("STANDIN_ROLL_ON_RESTART") == "1":
                state["generation"] += 1
        return 0
    if verb == "exec":
        state["kv_claude"] = args[-1]
        state["pending"] = int(os.environ.get("STANDIN_LAG", "0"))
        out.write("new version: 0123abcd\n")
        return 0
    if verb == "delete" and args[1] == "pod":
        if os.environ.get("STANDIN_LOSE_SESSIONS") == "1":  # a gateway keeping them in memory
            state["sessions"] = {}
        return 0
    if verb == "delete":
        return 1 if os.environ.get("STANDIN_STUCK") == "1" else 0
    if verb == "get":
        return kubectl_get(args[1:], ns, state)
    sys.stderr.write(f"standin kubectl: unexpected {args}\n")
    return 2


def kubectl_get(args: list[str], ns: str, state: State) -> int:
    operator_sync(state)
    out = sys.stdout
    what = args[0]
    output = args[args.index("-o") + 1] if "-o" in args else ""
    if what == "crd":
        if not state["crd"]:
            sys.stderr.write("Error from server (NotFound)\n")
            return 1
        return 0
    if what == "configmap":
        data = state["configmaps"].get(f"{ns}/{args[1]}")
        if data is None:
            sys.stderr.write("Error from server (NotFound)\n")
            return 1
        out.write(data["ca.crt"])
        return 0
    if what == "secret":
        data = state["secrets"].get(args[1])
        key = output.removeprefix("jsonpath={.data.").removesuffix("}").replace("\\.", ".")
        if data is None or key not in data:
            return 1
        out.write(b64(data[key]))
        return 0
    if what == "deploy":
        if args[1].endswith("-operator"):
            out.write(str(state["replicas"]))
            return 0
        annotations = {"llm-mcp-hub.io/claude-hash": state["hash"]}
        if output == "json":
            deploy = {
                "metadata": {"generation": state["generation"]},
                "spec": {"template": {"metadata": {"annotations": annotations}}},
            }
            out.write(json.dumps(deploy))
        else:
            out.write(str(state["generation"]))
        return 0
    if what == "llmprovider":
        out.write(
            dt.datetime.fromtimestamp(state["last_sync"], dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        )
        return 0
    if what == "llmproviders":
        if state["release"] or os.environ.get("STANDIN_STUCK") == "1":
            out.write("llmprovider.llm-mcp-hub.io/claude\n")
        return 0
    if what in ("secrets", "pods") and output == "name":
        if state["release"]:
            out.write(f"{what[:-1]}/x\n")
        return 0
    return 0  # the failure report's listings


def helm(argv: list[str], state: State) -> int:
    while argv and argv[0] in ("--kubeconfig", "--kube-context"):
        argv = argv[2:]
    if argv[0] == "upgrade":
        # As the chart on a live cluster: LLMProviders need the CRD an earlier release created.
        if not state["crd"] and "providers=[]" not in argv:
            sys.stderr.write("Error: providers: the LLMProvider CRD is not in the cluster yet\n")
            return 1
        state["crd"] = True  # a template with resource-policy keep: uninstall leaves it
        if "--install" in argv:
            state["release"] = True
        for i, a in enumerate(argv):
            if a == "--set" and argv[i + 1].startswith("operator.replicaCount="):
                state["replicas"] = int(argv[i + 1].split("=")[1])
        return 0
    if argv[0] == "uninstall":
        state["release"] = False
        state["secrets"] = {}
        return 0
    return 0  # test


def kind(argv: list[str], state: State) -> int:
    def flag(name: str) -> str:
        return argv[argv.index(name) + 1]

    if argv[:2] == ["get", "clusters"]:
        sys.stdout.write("".join(f"{c}\n" for c in state["clusters"]))
    elif argv[:2] == ["get", "kubeconfig"]:
        sys.stdout.write(kubeconfig(flag("--name")))
    elif argv[:2] == ["create", "cluster"]:
        state["clusters"].append(flag("--name"))
        Path(flag("--kubeconfig")).write_text(kubeconfig(flag("--name")))
    elif argv[:2] == ["delete", "cluster"]:
        state["clusters"].remove(flag("--name"))
    return 0


def kubeconfig(cluster: str) -> str:
    ctx = f"kind-{cluster}"
    return (
        f"apiVersion: v1\nkind: Config\ncurrent-context: {ctx}\n"
        f"clusters: [{{name: {ctx}, cluster: {{server: 'https://127.0.0.1:1'}}}}]\n"
        f"contexts: [{{name: {ctx}, context: {{cluster: {ctx}, user: {ctx}}}}}]\n"
        f"users: [{{name: {ctx}, user: {{}}}}]\n"
    )


ADMIN_PORT = 9090  # the gateway's admin port: /metrics and /health/tokens, nowhere else


def forward(argv: list[str]) -> None:
    """Remember which remote port a local port reaches, so curl answers as that port would."""
    mapping = next(a for a in argv if ":" in a and a.split(":")[0].isdigit())
    local, _, remote = mapping.partition(":")
    ports = Path(os.environ["STANDIN_STATE"] + ".ports")
    with ports.open("a") as out:
        out.write(f"{local} {remote}\n")


def remote_port(url: str) -> int | None:
    local = url.split("://", 1)[1].split("/", 1)[0].rpartition(":")[2]
    ports = Path(os.environ["STANDIN_STATE"] + ".ports")
    pairs = dict(line.split() for line in ports.read_text().splitlines()) if ports.exists() else {}
    return int(pairs[local]) if local in pairs else None


def curl(argv: list[str]) -> int:
    url = next(a for a in reversed(argv) if a.startswith("http"))
    body = argv[argv.index("-d") + 1] if "-d" in argv else ""
    admin_only = url.endswith(("/health/tokens", "/metrics"))
    if admin_only and remote_port(url) != ADMIN_PORT:
        if "-w" in argv:
            sys.stdout.write("404")
            return 0
        return 22  # curl -f on a 404
    if "-w" in argv:
        sys.stdout.write("200")
        return 0
    if url.endswith("/health/live"):
        answer = "ok"
    elif url.endswith("/metrics"):
        answer = "llmhub_gateway_up 1\n"
    elif url.endswith("/health/tokens"):
        answer = json.dumps({"providers": {p: {"status": "valid"} for p in ("claude", "gemini")}})
    elif url.endswith("/v1/chat"):
        answer = chat(json.loads(body))
    else:
        request = json.loads(body)
        if request.get("method") == "tools/call":
            prompt = request["params"]["arguments"]["prompt"]
            result = {"content": [{"type": "text", "text": f"echo: {prompt}"}], "isError": False}
            answer = "event: message\ndata: " + json.dumps(
                {"jsonrpc": "2.0", "id": 2, "result": result}
            )
        else:
            answer = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {}})
        if "-D" in argv:
            headers = "HTTP/1.1 200 OK\r\nmcp-session-id: standin-session\r\n\r\n"
            Path(argv[argv.index("-D") + 1]).write_text(headers)
    if "-o" in argv:
        target = argv[argv.index("-o") + 1]
        if target != "/dev/null":
            Path(target).write_text(answer)
    else:
        sys.stdout.write(answer)
    return 0


def chat(request: dict[str, Any]) -> str:
    """POST /v1/chat as the gateway with the fake CLI answers it (FAKE_CLI_TOKEN_FINGERPRINT and
    FAKE_CLI_ECHO_CONTEXT on): the token the pod runs with, the session's earlier prompts."""
    state = load()
    sessions = state.setdefault("sessions", {})
    session_id = request.get("session_id") or f"standin-session-{len(sessions)}"
    history = sessions.setdefault(session_id, [])
    token = state["secrets"].get("claude-credentials", {}).get("CLAUDE_CODE_OAUTH_TOKEN", "")
    if os.environ.get("STANDIN_STALE_CLI") == "1":  # pods the rotation never restarted
        token = "the first run's token"
    fingerprint = hashlib.sha256(token.encode()).hexdigest()[:8]
    text = f"[fake-claude token=present:{fingerprint}] context={json.dumps(history)} "
    history.append(request["prompt"])
    save(state)
    return json.dumps({"session_id": session_id, "text": text + request["prompt"]})


def main() -> int:
    tool, argv = sys.argv[1], sys.argv[2:]
    with Path(os.environ["STANDIN_LOG"]).open("a") as log:
        entry = {"tool": tool, "argv": argv, "kubeconfig_env": os.environ.get("KUBECONFIG")}
        log.write(json.dumps(entry) + "\n")
    if os.environ.get("STANDIN_FAIL") == tool:
        sys.stderr.write(f"standin {tool}: failing on purpose\n")
        return 1
    if tool == "docker":
        return 0
    if tool == "curl":
        return curl(argv)
    if tool == "kubectl" and "port-forward" in argv:
        forward(argv)
        time.sleep(600)  # until the script kills it
        return 0
    # Input first, then one call at a time: the script pipes one kubectl into another, and the
    # writer must not wait for a lock the reader holds.
    global STDIN
    STDIN = "" if sys.stdin.isatty() else sys.stdin.read()
    with Path(os.environ["STANDIN_STATE"] + ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = load()
        try:
            return {"kubectl": kubectl, "helm": helm, "kind": kind}[tool](argv, state)
        finally:
            save(state)


if __name__ == "__main__":
    sys.exit(main())
