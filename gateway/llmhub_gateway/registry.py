"""Which providers this replica serves, and which provider a model id belongs to.

Providers are built from Settings (adapters from ``providers/``) and each is wrapped in
``CappedProvider`` (per-pod concurrency cap and overall deadline). The HTTP layer only sees this.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from llmhub_common.tokens import TokenHealth, classify
from llmhub_gateway.core.config import Settings, split
from llmhub_gateway.errors import UnknownProvider
from llmhub_gateway.providers.base import Provider

# The bare names docs and clients use for Claude's families (the CLI's own aliases), for the
# ids /v1/models lists for them (``providers/claude.py`` runs those as the CLI's aliases).
MODEL_ALIASES = {"sonnet": "claude-sonnet", "opus": "claude-opus", "haiku": "claude-haiku"}


class Registry:
    def __init__(self, providers: Iterable[Provider], settings: Settings) -> None:
        self._providers = {p.name: p for p in providers}
        self._settings = settings

    def names(self) -> Sequence[str]:
        return tuple(self._providers)

    def get(self, name: str) -> Provider:
        try:
            return self._providers[name]
        except KeyError:
            raise UnknownProvider(f"unknown provider '{name}'") from None

    def configured(self) -> list[Provider]:
        return [p for p in self._providers.values() if p.configured()]

    def problems(self) -> dict[str, str]:
        """Why a configured provider cannot run on this replica (its CLI is missing), by
        name. Adapters may offer ``problem() -> str | None``; those without one have none."""
        found: dict[str, str] = {}
        for provider in self.configured():
            check = getattr(provider, "problem", None)
            problem = check() if callable(check) else None
            if problem:
                found[provider.name] = problem
        return found

    def warm(self) -> None:
        """On the loop, after a passed check: adapters that keep warm CLIs start their spares."""
        for provider in self.configured():
            warm = getattr(provider, "warm", None)
            if callable(warm):
                warm()

    @staticmethod
    def canonical(model: str) -> str:
        """The listed id a model id stands for (``sonnet`` → ``claude-sonnet``), else itself."""
        return MODEL_ALIASES.get(model, model)

    def for_model(self, model: str) -> Provider:
        """The provider serving a model id: one that lists it in ``models()`` (so every id
        GET /v1/models shows is servable, ``claude-sonnet`` included), an alias such as
        ``sonnet`` as the id it stands for, else by prefix (``claude*``, ``gemini*``: dated
        ids the list does not name)."""
        model = self.canonical(model)
        configured = self.configured()
        for provider in configured:
            if model in provider.models():
                return provider
        for provider in configured:
            if model.startswith(provider.name):
                return provider
        raise UnknownProvider(f"model '{model}' is not served here; see GET /v1/models")

    def token_health(self) -> dict[str, TokenHealth]:
        """Health of each configured provider's credential (seeds' /health/tokens shape)."""
        return {
            p.name: classify(
                self._settings.token_expiry(p.name),
                warn_before_days=self._settings.token_warn_before_days,
            )
            for p in self.configured()
        }

    def account_problems(self) -> dict[str, tuple[str, str]]:
        """(error type, what to do) per provider whose account the vendor refused last time.

        Adapters may offer ``account_problem()``; the refusal clears once a call succeeds."""
        found: dict[str, tuple[str, str]] = {}
        for provider in self.configured():
            check = getattr(provider, "account_problem", None)
            problem = check() if callable(check) else None
            if problem:
                found[provider.name] = problem
        return found

    async def start(self) -> None:
        """Let providers warm up (pre-start CLIs); adapters may offer ``async start()``."""
        for provider in self._providers.values():
            start = getattr(provider, "start", None)
            if callable(start):
                await start()

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()


def build_providers(settings: Settings) -> list[Provider]:
    """The real adapters, each behind its concurrency cap and deadline."""
    # Imported here so the HTTP layer and its tests never load the CLIs' SDKs.
    from llmhub_gateway.providers.claude import ClaudeProvider
    from llmhub_gateway.providers.gemini import GeminiProvider
    from llmhub_gateway.providers.gemini_acp import PoolLimits
    from llmhub_gateway.providers.limits import CappedProvider
    from llmhub_gateway.providers.owners import owned

    claude = ClaudeProvider(
        token=settings.claude_token(),
        default_model=settings.claude_model,
        cli_path=settings.claude_cli_path,
        scratch_root=owned(settings.scratch_dir),  # swept only once this process is gone
        **claude_runtime(settings),
    )
    gemini = GeminiProvider(
        auth_path=settings.gemini_auth_file(),
        default_model=settings.gemini_model,
        cli_path=settings.gemini_cli_path,
        cli_home=settings.gemini_cli_home,
        project=settings.google_cloud_project,
        runtime=settings.gemini_runtime,
        limits=PoolLimits(
            max_processes=settings.gemini_acp_processes,
            sessions_per_process=settings.gemini_acp_sessions_per_process,
            max_turns=settings.gemini_acp_max_turns,
            max_age_s=settings.gemini_acp_max_age_seconds,
            memory_mb=settings.provider_memory_mb,
            shutdown_grace_s=settings.shutdown_graceful_seconds,
        ),
        pass_env=split(settings.gemini_cli_env_passthrough),
        recordings=gemini_recordings(settings),
    )
    return [
        CappedProvider(
            claude,
            max_concurrency=settings.claude_max_concurrency,
            timeout_s=settings.claude_timeout_seconds,
        ),
        CappedProvider(
            gemini,
            max_concurrency=settings.gemini_max_concurrency,
            timeout_s=settings.gemini_timeout_seconds,
        ),
    ]


def gemini_recordings(settings: Settings) -> Any:
    """The Gemini CLI's chat recordings on the gateway's Redis (None without Redis), so a
    session continues with ``session/load`` on any replica."""
    from llmhub_gateway.providers.gemini_recordings import RecordingStore
    from llmhub_gateway.redis_client import connect

    if settings.redis_url is None or settings.gemini_runtime != "acp":
        return None
    return RecordingStore(
        connect(settings.redis_url.get_secret_value()),
        prefix="llmhub:gemini:",
        ttl_s=settings.session_ttl_seconds,
        owns_client=True,
    )


def claude_runtime(settings: Settings) -> dict[str, Any]:
    """The Claude adapter's runtime settings: pool limits within the memory budget, the native
    session store on the gateway's Redis, the CLI's retries, timeout and env passthrough."""
    from llmhub_gateway.providers.claude_pool import ClaudePoolLimits
    from llmhub_gateway.providers.claude_store import ClaudeTranscriptStore
    from llmhub_gateway.redis_client import connect

    store = None
    if settings.redis_url is not None and settings.claude_runtime == "warm":
        store = ClaudeTranscriptStore(
            connect(settings.redis_url.get_secret_value()),
            prefix="llmhub:claude:",
            ttl_s=settings.session_ttl_seconds,
            single_project="llmhub",
            owns_client=True,
        )
    return {
        "runtime": settings.claude_runtime,
        "pool": ClaudePoolLimits(
            idle=settings.claude_pool_idle,
            max_processes=max(1, settings.provider_memory_mb // settings.claude_pool_max_rss_mb),
            max_turns=settings.claude_pool_max_turns,
            max_age_s=settings.claude_pool_max_age_s,
            max_rss_mb=settings.claude_pool_max_rss_mb,
            memory_mb=settings.provider_memory_mb,  # shared with Gemini's CLIs: measured
        ),
        "session_store": store,
        "env_passthrough": split(settings.claude_cli_env_passthrough),
        "max_retries": settings.claude_max_retries,
        "api_timeout_s": settings.claude_api_timeout_s,
        "shutdown_grace_s": settings.shutdown_graceful_seconds,
        # The longest line the CLI writes: a transcript entry of a replayed prompt (a whole
        # session and the new text), JSON-escaped (at most doubled), with room to spare.
        "max_buffer_bytes": 2 * (settings.session_max_bytes + settings.max_prompt_bytes)
        + 1024 * 1024,
    }
