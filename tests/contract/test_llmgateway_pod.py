"""The pod an LLMGateway renders, run as the gateway image would run it: the operator's render
and the gateway's code agree on every name, path, port and Secret key (as the chart's pod does in
test_pod_contract.py). Only the served providers' Secrets exist for it."""

from __future__ import annotations

import hashlib
import json
import secrets as pysecrets
import time
from pathlib import Path

import httpx

from llmhub_operator.gateways.model import GatewaySettings, parse_gateway, served_providers
from llmhub_operator.gateways.render import Owner, deployment
from tests.contract.pods import REPO, Image, LocalPod
from tests.contract.test_pod_contract import FAKE_CLIS, get, ok, running
from tests.waiting import eventually

CLAUDE = "sk-ant-oat01-" + pysecrets.token_urlsafe(24)
GEMINI = {
    "access_token": "ya29.gw-contract-" + pysecrets.token_urlsafe(16),
    "refresh_token": "1//gw-contract-" + pysecrets.token_urlsafe(16),
    "token_type": "Bearer",
    "expiry_date": int(time.time() * 1000) + 3_600_000,
}
KEY = "gw-contract-" + pysecrets.token_urlsafe(16)
EXPIRES = "2099-01-01T00:00:00Z"


def provider(name: str, kind: str) -> dict[str, object]:
    status = {"contentHash": f"sha256:{name}", "token": {"status": "valid"}}
    return {"metadata": {"name": name}, "spec": {"provider": kind}, "status": status}


async def test_an_llm_gateway_pod_serves_both_providers_from_only_their_secrets(
    tmp_path: Path, pod_root: Path
) -> None:
    spec = parse_gateway(
        {
            "providers": {"names": ["claude", "gemini"]},
            "auth": {"modes": ["static"], "staticKeys": {"secretName": "caller-keys"}},
        }
    )
    served = served_providers(spec, [provider("claude", "claude"), provider("gemini", "gemini")])
    rendered = deployment(Owner("hub", "team-a", "uid"), spec, served, GatewaySettings())
    pod = LocalPod(
        rendered,
        Image.parse(REPO / "Dockerfile.gateway"),
        pod_root,
        secrets={  # exactly what the pod may reference: a missing one fails the mount or env
            "claude-credentials": {"CLAUDE_CODE_OAUTH_TOKEN": CLAUDE, "expires_at": EXPIRES},
            "gemini-credentials": {"oauth_creds.json": json.dumps(GEMINI), "expires_at": EXPIRES},
            "caller-keys": {"keys": f"contract sha256:{hashlib.sha256(KEY.encode()).hexdigest()}"},
        },
        image_files=FAKE_CLIS,
    )
    assert set(pod.ports) <= pod.image.exposed
    pod.mount_volumes()
    # The LLMGateway spec has no CLI paths: the fake CLIs stand where the image puts the real.
    env = pod.process_env(
        CLAUDE_CLI_PATH=str(pod.local_path("/opt/fakes/fake_claude.py")),
        GEMINI_CLI_PATH=str(pod.local_path("/opt/fakes/fake_gemini.py")),
    )
    log = tmp_path / "gateway.log"
    async with running(pod.argv(), env, log), httpx.AsyncClient(timeout=30) as http:
        await eventually(lambda: get(http, pod.probe_url("readinessProbe")), ok, timeout=30)
        tokens = (await http.get(pod.port_url(9090, "/health/tokens"))).json()
        assert tokens["claude"]["status"] == tokens["gemini"]["status"] == "valid"
        for kind, marker in (("claude", "[fake-claude"), ("gemini", "[fake-gemini")):
            reply = await http.post(
                pod.port_url(8000, "/v1/chat"),
                json={"provider": kind, "prompt": "hello from an LLMGateway pod"},
                headers={"Authorization": f"Bearer {KEY}"},
            )
            assert reply.status_code == 200, reply.text
            assert reply.json()["text"].startswith(marker)
        anonymous = await http.post(
            pod.port_url(8000, "/v1/chat"), json={"provider": "claude", "prompt": "x"}
        )
        assert anonymous.status_code == 401
    logs = log.read_text()
    assert "Application startup complete" in logs
    assert CLAUDE not in logs
    assert GEMINI["refresh_token"] not in logs
