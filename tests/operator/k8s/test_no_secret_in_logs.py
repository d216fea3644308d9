"""No token in the operator's output at any log level, DEBUG included, in any encoding."""

from __future__ import annotations

import base64
import json

from tests.fakes.fake_azure import FakeAzure
from tests.k8s.kube import RealKube, decode
from tests.leaks import assert_no_leak
from tests.operator.k8s.conftest import StartOperator
from tests.waiting import eventually

CLAUDE = "sk-ant-oat01-" + "debug-log-claude-0006"
ROTATED = "sk-ant-oat01-" + "debug-log-rotated-0007"
GEMINI = {"access_token": "ya29.debug-log-access-0008", "refresh_token": "1//debug-log-refresh-9"}


def _forms(label: str, value: str) -> dict[str, str]:
    """The raw value and the shapes it takes on the wire: base64 and JSON-escaped."""
    return {
        label: value,
        f"{label} (base64)": base64.b64encode(value.encode()).decode(),
        f"{label} (JSON)": json.dumps(value)[1:-1],
    }


async def test_debug_logs_carry_no_token(
    k8s: RealKube, fake_azure: FakeAzure, start_operator: StartOperator
) -> None:
    gemini = json.dumps(GEMINI)
    fake_azure.set_secret("claude-token", CLAUDE)
    fake_azure.set_secret("gemini-token", gemini)
    await k8s.create_deployment("gateway")
    await k8s.create_provider("claude", fake_azure.base_url, refreshInterval="1s")
    await k8s.create_provider(
        "gemini", fake_azure.base_url, provider="gemini", refreshInterval="1s"
    )
    operator = start_operator(log_level="DEBUG")
    await eventually(lambda: k8s.secret_or_none("gemini-credentials"), bool, timeout=30)
    fake_azure.set_secret("claude-token", ROTATED)  # a rotation: Secret replaced, gateway rolled
    await eventually(
        lambda: k8s.secret("claude-credentials"),
        lambda s: decode(s, "CLAUDE_CODE_OAUTH_TOKEN") == ROTATED,
        timeout=20,
    )
    await k8s.core.delete_namespaced_secret("gemini-credentials", k8s.namespace)  # a repair
    await eventually(lambda: k8s.secret_or_none("gemini-credentials"), bool, timeout=20)
    operator.stop()
    output = operator.log()
    assert '"level": "DEBUG"' in output  # DEBUG really was on
    values = {
        **_forms("claude", CLAUDE),
        **_forms("rotated", ROTATED),
        **_forms("gemini creds", gemini),
        **_forms("gemini access", GEMINI["access_token"]),
        **_forms("gemini refresh", GEMINI["refresh_token"]),
    }
    for i, token in enumerate(sorted(fake_azure.issued_tokens())):
        values[f"Key Vault access token {i}"] = token
    assert_no_leak(output, **values)
