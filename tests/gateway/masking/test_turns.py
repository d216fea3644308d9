"""The turn runner with masking: what the provider gets (prompt, system, replayed history) is
masked, the answer streamed back in small chunks is unmasked without ever showing half a
placeholder, the session stores clear text; settings choose recognizers per provider and an
unknown name stops the gateway at start."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from llmhub_gateway import redis_client
from llmhub_gateway.__main__ import main
from llmhub_gateway.chat import ChatResult, ChatService
from llmhub_gateway.core.config import Settings
from llmhub_gateway.errors import StoreUnavailable
from llmhub_gateway.masking.config import build_stage
from llmhub_gateway.masking.store import MemoryMaskStore, RedisMaskStore
from llmhub_gateway.metrics import Metrics
from llmhub_gateway.providers.base import ChatRequest
from llmhub_gateway.registry import Registry
from llmhub_gateway.sessions.memory import MemorySessionStore
from tests.gateway.conftest import RedisServer
from tests.gateway.fake_provider import EchoProvider
from tests.tcp_proxy import FaultyProxy


class ChunkyEcho(EchoProvider):
    """Echoes system and prompt three characters at a time (placeholders get cut)."""

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        self.requests.append(request)
        text = f"{request.system or ''}|{request.prompt}"
        for at in range(0, len(text), 3):
            yield text[at : at + 3]


def _service(providers: dict[str, str] | None = None) -> tuple[ChatService, ChunkyEcho, ChunkyEcho]:
    claude, gemini = ChunkyEcho("claude", "c-1"), ChunkyEcho("gemini", "g-1")
    metrics = Metrics()
    settings = Settings(masking_enabled=True, masking_providers=providers or {})
    stage = build_stage(
        enabled=True,
        names="all",
        extras={"ticket": r"TCK-\d+"},
        providers=settings.masking_providers,
        store=MemoryMaskStore(60),
        metrics=metrics,
    )
    service = ChatService(
        Registry([claude, gemini], settings), MemorySessionStore(60), metrics, masking=stage
    )
    return service, claude, gemini


async def _turn(service: ChatService, **kwargs: str | None) -> tuple[list[str], ChatResult]:
    prepared = await service.prepare(**kwargs)  # type: ignore[arg-type]
    deltas: list[str] = []
    async for item in service.run(prepared):
        if isinstance(item, str):
            deltas.append(item)
        elif isinstance(item, ChatResult):
            return deltas, item
    raise AssertionError("no result")


async def test_masked_for_the_provider_clear_for_the_caller_and_the_store() -> None:
    service, claude, _ = _service()
    deltas, first = await _turn(
        service, provider="claude", prompt="ping 10.0.0.5 for TCK-42", system="on vpc-0a1b2c3d"
    )
    assert claude.requests[0].prompt == "ping [PRIVATE_IP_1] for [TICKET_1]"
    assert claude.requests[0].system == "on [AWS_VPC_1]"
    assert first.text == "on vpc-0a1b2c3d|ping 10.0.0.5 for TCK-42"
    assert "".join(deltas) == first.text
    assert not any("[" in d and "]" not in d for d in deltas)  # never half a placeholder
    _, second = await _turn(
        service, provider="claude", prompt="and 10.0.0.6, 10.0.0.5", session_id=first.session_id
    )
    replayed = claude.requests[1]
    assert replayed.prompt == "and [PRIVATE_IP_2], [PRIVATE_IP_1]"
    assert [t.text for t in replayed.history] == [
        "ping [PRIVATE_IP_1] for [TICKET_1]",
        "on [AWS_VPC_1]|ping [PRIVATE_IP_1] for [TICKET_1]",
    ]
    assert second.text == "|and 10.0.0.6, 10.0.0.5"
    session = await service.store.get(first.session_id)
    assert session is not None
    assert session.turns[0].text == "ping 10.0.0.5 for TCK-42"
    # Every occurrence sent counts: 1 in turn one, 2 in its replayed history, 2 in turn two.
    assert service.metrics.masked.labels("claude", "private_ip")._value.get() == 5


async def test_per_provider_override() -> None:
    service, claude, gemini = _service({"gemini": "off", "claude": "email"})
    await _turn(service, provider="claude", prompt="a@b.example 10.0.0.5")
    await _turn(service, provider="gemini", prompt="a@b.example 10.0.0.5")
    assert claude.requests[0].prompt == "[EMAIL_1] 10.0.0.5"
    assert gemini.requests[0].prompt == "a@b.example 10.0.0.5"


def test_unknown_recognizer_stops_the_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MASKING_RECOGNIZERS", "private_ip,aws_everything")
    assert main(["--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "MASKING_RECOGNIZERS: unknown masking recognizer(s) aws_everything" in err
    monkeypatch.delenv("MASKING_RECOGNIZERS")
    monkeypatch.setenv("MASKING_PROVIDERS", '{"claude": "nope"}')
    assert main(["--port", "0"]) == 2
    assert "MASKING_PROVIDERS: unknown masking recognizer(s) nope" in capsys.readouterr().err


def test_off_by_default() -> None:
    assert Settings().masking_enabled is False


async def test_mask_store_outage_refuses_before_the_provider(redis_server: RedisServer) -> None:
    """Placeholders cannot be stored: the turn is refused with 503 before the provider runs
    (never sent clear, never sent with placeholders nobody could put back), the new session is
    removed, and the retry goes through once Redis answers again."""
    with FaultyProxy(redis_server.port) as proxy:
        client = redis_client.connect(proxy.url, socket_timeout=0.5)
        metrics = Metrics()
        stage = build_stage(
            enabled=True,
            names="all",
            extras={},
            providers={},
            store=RedisMaskStore(client, 60, f"t{uuid.uuid4().hex[:8]}:"),
            metrics=metrics,
        )
        sessions = MemorySessionStore(60)
        claude = ChunkyEcho("claude", "c-1")
        service = ChatService(Registry([claude], Settings()), sessions, metrics, masking=stage)
        proxy.partition()
        with pytest.raises(StoreUnavailable):
            await service.prepare(provider="claude", prompt="ping 10.0.0.5")
        assert claude.requests == []
        assert len(sessions) == 0
        proxy.partition(on=False)
        proxy.drop_connections()
        _, result = await _turn(service, provider="claude", prompt="ping 10.0.0.5")
        assert claude.requests[0].prompt == "ping [PRIVATE_IP_1]"
        assert result.text == "|ping 10.0.0.5"
        await client.aclose()
