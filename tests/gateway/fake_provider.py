"""A Provider test double (like httpx's MockTransport): deterministic answers chosen by prompt.

Answers echo the provider, model, replayed history size, system text and prompt, so tests can
prove what the gateway sent. Magic prompts select failures: ``!busy``, ``!timeout``, ``!crash``,
``!auth``, ``!bug`` (a non-provider exception quoting a secret), and ``!slow`` (a long,
slow stream, to test disconnects).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Sequence

from llmhub_gateway.providers.base import (
    ChatRequest,
    ProviderAuthError,
    ProviderBusy,
    ProviderCrashed,
    ProviderTimeout,
    Usage,
)

LEAKY_SECRET = "sk-ant-oat01-ThisMustNeverReachAClient0123456789"


class EchoProvider:
    def __init__(
        self,
        name: str,
        default_model: str,
        *,
        configured: bool = True,
        aliases: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.default_model = default_model
        self._configured = configured
        self.aliases = tuple(aliases)  # further listed model ids (the real adapter's aliases)
        self.requests: list[ChatRequest] = []
        self.open_streams = 0
        self.closed_streams = 0

    def configured(self) -> bool:
        return self._configured

    def models(self) -> Sequence[str]:
        return (self.default_model, f"{self.name}-other", *self.aliases)

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        self.requests.append(request)
        self.open_streams += 1
        try:
            prompt = request.prompt
            if "!busy" in prompt:
                raise ProviderBusy("claude is at capacity (4 of 4)", retry_after=2)
            if "!timeout" in prompt:
                raise ProviderTimeout("no answer within 300 s")
            if "!crash" in prompt:
                raise ProviderCrashed("the CLI exited with status 1")
            if "!bug" in prompt:
                raise RuntimeError(f"unexpected failure near {LEAKY_SECRET}")
            if "!auth" in prompt:
                raise ProviderAuthError("the provider rejected the credential")
            if "!slow" in prompt:
                for i in range(600):
                    yield f"tick{i} "
                    await asyncio.sleep(0.05)
                return
            header = f"[{self.name}|{request.model}|turns={len(request.history)}"
            if request.system:
                header += f"|system={request.system}"
            yield header + "] "
            for word in prompt.split(" "):
                yield word + " "
        finally:
            self.open_streams -= 1
            self.closed_streams += 1

    async def aclose(self) -> None:
        return None


class GatedProvider(EchoProvider):
    """EchoProvider whose ``!gate`` prompts wait until the test opens the gate."""

    def __init__(self, name: str, default_model: str) -> None:
        super().__init__(name, default_model)
        self.started = threading.Event()
        self.gate = threading.Event()

    def arm(self) -> None:
        self.started.clear()
        self.gate.clear()

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        if "!gate" in request.prompt:
            self.started.set()
            deadline = time.monotonic() + 20
            while not self.gate.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        async for delta in super().stream(request):
            yield delta


class PoolProvider(GatedProvider):
    """GatedProvider with a pool's admission check: ``!full`` prompts find the pool full."""

    def __init__(self, name: str, default_model: str) -> None:
        super().__init__(name, default_model)
        self.admitted: list[ChatRequest] = []

    def admit(self, request: ChatRequest) -> None:
        if "!full" in request.prompt:
            raise ProviderBusy(f"{self.name}: no warm process free", retry_after=3)
        self.admitted.append(request)


def echo_providers(*, gemini_configured: bool = True) -> list[EchoProvider]:
    return [
        EchoProvider(  # the real adapter's list (test_openai checks it)
            "claude",
            "claude-sonnet-4-5-20250929",
            aliases=("claude-sonnet", "claude-opus", "claude-haiku"),
        ),
        EchoProvider("gemini", "gemini-2.5-pro", configured=gemini_configured),
    ]


def expected_text(provider: str, model: str, turns: int, prompt: str) -> str:
    return f"[{provider}|{model}|turns={turns}] " + "".join(w + " " for w in prompt.split(" "))


class UsageProvider(EchoProvider):
    """EchoProvider that reports usage as a CLI would: a word count in and out."""

    async def stream(self, request: ChatRequest) -> AsyncIterator[str | Usage]:  # type: ignore[override]
        words = 0
        async for delta in super().stream(request):
            words += len(delta.split())
            yield delta
        yield Usage(tokens_in=len(request.prompt.split()), tokens_out=words)
