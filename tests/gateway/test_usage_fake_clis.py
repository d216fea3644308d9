"""Usage per caller from what the CLIs report: the real entry point and adapters drive the fake
CLIs (Claude's ``result.usage``, Gemini's ACP ``_meta.quota.token_count``), and the totals in
``GET /v1/usage``, OpenAI's ``usage`` and the token metric match, call for call."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.fakes.fake_gemini import reported as gemini_reported
from tests.gateway.conftest import GatewayProcess
from tests.gateway.test_e2e_fake_clis import _env

ALICE = "alice-usage-key-0123456789"
OPS = "ops-usage-key-9876543210"


@pytest.fixture(scope="module")
def counted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("usage")
    keys = tmp / "keys"
    keys.write_text(
        "".join(
            f"{n} sha256:{hashlib.sha256(k.encode()).hexdigest()}\n"
            for n, k in (("alice", ALICE), ("ops", OPS))
        )
    )
    env = _env(
        tmp,
        AUTH_MODES="static",
        AUTH_STATIC_KEYS_FILE=str(keys),
        AUTH_ADMIN_CALLERS="ops",
        LOG_LEVEL="INFO",
    )
    gw = GatewayProcess(env, module="llmhub_gateway", log_path=tmp / "gateway.log")
    gw.start()
    yield gw
    gw.stop()


def _reported(text: str) -> tuple[int, int]:
    """What fake_claude reports for an answer: the prompt it received, the answer's length."""
    received = text.split("] ", 1)[1]
    return len(received), len(text)


def _claude_reported(text: str) -> tuple[int, int]:
    """What fake_claude reports (as the CLI's result usage): the words it received this turn,
    the words of its answer."""
    received = text.split("] ", 1)[1]
    return len(received.split()), len(text.split())


def test_usage_totals_match_what_the_fake_clis_reported(counted: GatewayProcess) -> None:
    alice = {"Authorization": f"Bearer {ALICE}"}
    expected_in = expected_out = 0
    first = httpx.post(
        f"{counted.url}/v1/chat",
        json={"provider": "claude", "prompt": "count me"},
        headers=alice,
        timeout=60,
    )
    assert first.status_code == 200, first.text
    tokens_in, tokens_out = _claude_reported(first.json()["text"])
    assert first.json()["usage"] == {"tokens_in": tokens_in, "tokens_out": tokens_out}
    expected_in, expected_out = expected_in + tokens_in, expected_out + tokens_out
    client = openai.OpenAI(base_url=f"{counted.url}/v1", api_key=ALICE, max_retries=0)
    completion = client.chat.completions.create(
        model="claude-sonnet-4-5-20250929", messages=[{"role": "user", "content": "and me too"}]
    )
    tokens_in, tokens_out = _claude_reported(completion.choices[0].message.content or "")
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (
        tokens_in,
        tokens_out,
    )
    expected_in, expected_out = expected_in + tokens_in, expected_out + tokens_out
    gemini = httpx.post(
        f"{counted.url}/v1/chat",
        json={"provider": "gemini", "prompt": "hello"},
        headers=alice,
        timeout=60,
    )
    assert gemini.status_code == 200, gemini.text

    report = httpx.get(f"{counted.url}/v1/usage", headers={"Authorization": f"Bearer {OPS}"}).json()
    by = {(e["caller"], e["provider"]): e for e in report["entries"]}
    assert by[("alice", "claude")] == {
        "caller": "alice",
        "provider": "claude",
        "requests": 2,
        "tokens_in": expected_in,
        "tokens_out": expected_out,
    }
    # fake_gemini over ACP reports session/prompt's _meta.quota.token_count like 0.61: words
    # received this turn, words answered.
    g_in, g_out = gemini_reported(gemini.json()["text"])
    assert gemini.json()["usage"] == {"tokens_in": g_in, "tokens_out": g_out}
    assert by[("alice", "gemini")] == {
        "caller": "alice",
        "provider": "gemini",
        "requests": 1,
        "tokens_in": g_in,
        "tokens_out": g_out,
    }
    metrics = httpx.get(f"{counted.admin_url}/metrics").text
    series = 'llm_mcp_hub_gateway_tokens_total{caller="alice",direction="out",provider="claude"}'
    assert f"{series} {float(expected_out)}" in metrics
    # One audit line per turn: who, what, tokens and status; no prompt or answer text.
    assert counted.log_path is not None
    lines = [json.loads(x) for x in counted.log_path.read_text().splitlines() if x.startswith("{")]
    audit = [
        x for x in lines if x.get("logger") == "llmhub_gateway.audit" and x["message"] == "turn"
    ]
    reads = [
        x for x in lines if x.get("logger") == "llmhub_gateway.audit" and x["message"] == "read"
    ]
    assert [(x["caller"], x["path"], x["status"]) for x in reads] == [("ops", "/v1/usage", "ok")]
    assert [(x["caller"], x["provider"], x["status"]) for x in audit] == [
        ("alice", "claude", "ok"),
        ("alice", "claude", "ok"),
        ("alice", "gemini", "ok"),
    ]
    assert sum(x["tokens_in"] for x in audit) == expected_in + g_in
    text = counted.log_path.read_text()
    assert ALICE not in text
    assert all(word not in json.dumps(audit) for word in ("count me", "and me too", "fake-claude"))
