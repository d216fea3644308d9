"""The gateway's account refusals on the LLMProvider (AccountUsable), from a real operator
process on the real control plane, with a stand-in for the gateway's /health/tokens."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from llmhub_cli.app import main as cli_main
from tests.fakes.fake_azure import FakeAzure
from tests.fakes.gateway_health import GatewayHealth, entry
from tests.k8s.kube import GROUP, PLURAL, VERSION, RealKube
from tests.operator.k8s.conftest import StartOperator
from tests.waiting import eventually

GEMINI = json.dumps({"access_token": "ya29.k8s-accounts-access", "refresh_token": "1//k8s-acc"})
CLAUDE = "sk-ant-oat01-" + "k8s-accounts-token-0001"
DAY = 86400
PROJECT_HELP = "gemini: this Gemini Code Assist account needs a Google Cloud project. Set it."
UNSUPPORTED_HELP = "gemini: Google no longer serves this account through the Gemini CLI."


@pytest.fixture
def gateway() -> Iterator[GatewayHealth]:
    stand_in = GatewayHealth()
    yield stand_in
    stand_in.stop()


def _env(url: str, *, timeout: float = 1.0) -> dict[str, str]:
    return {
        "LLMHUB_GATEWAY_URL": url,
        "LLMHUB_GATEWAY_DEPLOYMENT": "gateway",
        "LLMHUB_GATEWAY_POLL_SECONDS": "0.5",
        "LLMHUB_GATEWAY_TIMEOUT_SECONDS": str(timeout),
    }


def _account(body: dict[str, Any]) -> dict[str, Any] | None:
    for cond in (body.get("status") or {}).get("conditions") or []:
        if cond["type"] == "AccountUsable":
            return dict(cond)
    return None


async def _wait_account(k8s: RealKube, name: str, reason: str) -> dict[str, Any]:
    body = await eventually(
        lambda: k8s.provider(name),
        lambda b: (_account(b) or {}).get("reason") == reason,
        timeout=10,
    )
    found = _account(body)
    assert found is not None
    return found


async def test_refusals_show_on_the_served_provider_with_events_and_clear_on_recovery(
    k8s: RealKube,
    fake_azure: FakeAzure,
    start_operator: StartOperator,
    gateway: GatewayHealth,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_azure.set_secret("gemini-token", GEMINI, expires=time.time() + 90 * DAY)
    fake_azure.set_secret("claude-token", CLAUDE, expires=time.time() + 90 * DAY)
    # An hour's refresh: after the first sync only the gateway poll can change the condition.
    await k8s.create_provider(
        "gemini", fake_azure.base_url, provider="gemini", refreshInterval="1h"
    )
    # Another team's gateway: this one does not serve it, whatever it reports for claude.
    await k8s.create_provider(
        "claude", fake_azure.base_url, refreshInterval="1h", gateway={"deploymentName": "other"}
    )
    gateway.tokens = {
        "gemini": entry("provider_project_required", PROJECT_HELP),
        "claude": entry("provider_account_unsupported", UNSUPPORTED_HELP),
    }
    await k8s.create_deployment("gateway")  # Ready needs the gateway to carry the credential
    await k8s.create_deployment("other")  # else claude is Degraded and the CLI exits 1 for it
    start_operator(extra_env=_env(gateway.url))

    refused = await _wait_account(k8s, "gemini", "ProjectRequired")
    assert refused["status"] == "False"
    assert refused["message"] == PROJECT_HELP
    await k8s.wait_phase("gemini", "Ready")  # the credential itself syncs fine
    (event,) = await eventually(
        lambda: k8s.events("ProjectRequired"), lambda e: len(e) == 1, timeout=10
    )
    assert event.type == "Warning"
    assert event.message == PROJECT_HELP
    assert gateway.paths[0] == "/health/tokens"
    assert await _printed(k8s, "Account") == {"gemini": "ProjectRequired", "claude": None}

    # The CLI shows it and fails, for cron jobs and CI.
    code, out = await _cli_json(k8s, capsys)
    assert code == 1
    items = {item["name"]: item for item in json.loads(out)["items"]}
    assert items["gemini"]["account"] == "ProjectRequired"
    assert items["gemini"]["message"] == f"ProjectRequired: {PROJECT_HELP}"
    assert items["claude"]["account"] is None  # not served by this gateway

    # One GET per round for all providers, whatever their number.
    before, started = gateway.count(), time.monotonic()
    await asyncio.sleep(2.0)
    rounds = (time.monotonic() - started) / 0.5
    assert gateway.count() - before <= rounds + 1

    gateway.tokens = {"gemini": entry("provider_account_unsupported", UNSUPPORTED_HELP)}
    changed = await _wait_account(k8s, "gemini", "AccountUnsupported")
    assert changed["message"] == UNSUPPORTED_HELP
    await eventually(lambda: k8s.events("AccountUnsupported"), lambda e: len(e) == 1, timeout=10)

    gateway.tokens = {"gemini": entry()}
    usable = await _wait_account(k8s, "gemini", "NoRefusal")
    assert usable["status"] == "True"
    (back,) = await eventually(
        lambda: k8s.events("AccountUsable"), lambda e: len(e) == 1, timeout=10
    )
    assert back.type == "Normal"
    code, out = await _cli_json(k8s, capsys)
    assert code == 0
    assert {i["name"]: i["account"] for i in json.loads(out)["items"]}["gemini"] == "ok"

    # Several rounds later: one Event per change, and the other team's provider untouched.
    await asyncio.sleep(1.5)
    assert len(await k8s.events("ProjectRequired")) == 1
    assert len(await k8s.events("AccountUsable")) == 1
    assert _account(await k8s.provider("claude")) is None


async def test_a_gateway_that_hangs_or_is_down_delays_no_sync_and_keeps_the_last_state(
    k8s: RealKube,
    fake_azure: FakeAzure,
    start_operator: StartOperator,
    gateway: GatewayHealth,
) -> None:
    fake_azure.set_secret("gemini-token", GEMINI, expires=time.time() + 90 * DAY)
    await k8s.create_provider("gemini", fake_azure.base_url, provider="gemini")  # 2 s refresh
    gateway.tokens = {"gemini": entry("provider_project_required", PROJECT_HELP)}
    # A long timeout: a hanging gateway holds the poll for 30 s, never a sync.
    await k8s.create_deployment("gateway")
    start_operator(extra_env=_env(gateway.url, timeout=30))
    await k8s.wait_phase("gemini", "Ready")
    await _wait_account(k8s, "gemini", "ProjectRequired")

    gateway.hang = True
    hung = gateway.count()
    await eventually(lambda: _value(gateway.count()), lambda n: n > hung, timeout=10)
    seen = (await k8s.provider("gemini"))["status"]["lastSyncTime"]
    for _ in range(2):  # the 2 s refresh goes on while the poll hangs
        later = await eventually(
            lambda: k8s.provider("gemini"),
            lambda b, s=seen: b["status"]["lastSyncTime"] > s,
            timeout=5,
        )
        seen = later["status"]["lastSyncTime"]
        assert (_account(later) or {}).get("reason") == "ProjectRequired"  # last known state


async def test_no_gateway_listening_leaves_syncing_and_status_alone(
    k8s: RealKube, fake_azure: FakeAzure, start_operator: StartOperator
) -> None:
    gateway = GatewayHealth()
    url = gateway.url
    gateway.stop()  # nothing listens there now: connections are refused
    fake_azure.set_secret("gemini-token", GEMINI, expires=time.time() + 90 * DAY)
    await k8s.create_provider("gemini", fake_azure.base_url, provider="gemini")
    await k8s.create_deployment("gateway")
    operator = start_operator(extra_env=_env(url))
    body = await k8s.wait_phase("gemini", "Ready", timeout=15)
    later = await eventually(
        lambda: k8s.provider("gemini"),
        lambda b: b["status"]["lastSyncTime"] > body["status"]["lastSyncTime"],
        timeout=5,
    )
    assert _account(later) is None  # nothing known, nothing claimed
    log = operator.log()
    assert log.count("did not answer /health/tokens") == 1  # once per outage, not per round


async def _cli_json(k8s: RealKube, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    args = ["status", "-n", k8s.namespace, "-o", "json", "--kubeconfig", str(k8s.plane.kubeconfig)]
    capsys.readouterr()
    code = await asyncio.to_thread(cli_main, args)
    return code, capsys.readouterr().out


async def _printed(k8s: RealKube, column: str) -> dict[str, Any]:
    """One column of ``kubectl get llmp`` as the API server prints it (the CRD's columns)."""
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{k8s.namespace}/{PLURAL}"
    response = await k8s.api.call_api(
        path,
        "GET",
        header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
        _preload_content=False,
    )
    table = await response.json()
    response.release()
    names = [c["name"] for c in table["columnDefinitions"]]
    at = names.index(column)
    return {row["cells"][0]: row["cells"][at] or None for row in table["rows"]}


async def _value(value: object) -> object:
    return value
