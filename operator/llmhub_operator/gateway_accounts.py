"""The gateway's account refusals on the LLMProvider: the ``AccountUsable`` condition.

Only the gateway sees the Gemini CLI's "account not supported" and "project required"
refusals, and each replica keeps the last one in memory until a call succeeds. So the operator
asks every replica: it resolves the host of ``LLMHUB_GATEWAY_URL`` (the chart points it at a
headless Service on the gateway's admin port, whose name resolves to every ready gateway pod)
and GETs ``/health/tokens`` on each address by IP. The gateway serves it on its admin port only
(9090, never in the callers' Service; the chart's NetworkPolicy admits the operator there),
without caller auth, and its Host check admits IP literals. One round per poll interval for all
LLMProviders together, bounded by one timeout, in its own task: a gateway that is down or hangs
never delays or fails a sync. A round nobody answers keeps the last known state.

Why the operator reads and the gateway does not write: the gateway has no Kubernetes API access
(least privilege; a pod serving untrusted callers should not patch CRs), and it cannot tell which
LLMProvider fed its Secret. The operator knows: an LLMProvider is served by this gateway when
its ``spec.gateway.deploymentName`` names the gateway's Deployment in the operator's namespace.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from llmhub_operator.leader import Leadership
from llmhub_operator.status import ACCOUNT_USABLE, Condition

log = logging.getLogger(__name__)

# The gateway's error types (gateway/llmhub_gateway/providers/base.py) → condition reasons.
REASONS = {
    "provider_account_unsupported": "AccountUnsupported",
    "provider_project_required": "ProjectRequired",
}
NO_REFUSAL = "NoRefusal"


class GatewayAccountSettings(BaseSettings):
    """``LLMHUB_GATEWAY_*``; off while the URL is unset."""

    model_config = SettingsConfigDict(
        env_prefix="LLMHUB_GATEWAY_", env_ignore_empty=True, extra="ignore"
    )

    url: str = ""  # e.g. http://<release>-gateway-replicas.<ns>.svc.cluster.local:9090
    deployment: str = ""  # the gateway Deployment that LLMProviders name in spec.gateway
    poll_seconds: float = Field(default=30.0, gt=0)
    timeout_seconds: float = Field(default=3.0, gt=0)


@dataclass
class GatewayAccounts:
    """What the gateway's replicas last reported, as an ``AccountUsable`` per provider name."""

    url: str
    deployment: str
    namespace: str = ""  # the gateway's (and the operator's) namespace; "" matches any
    poll_seconds: float = 30.0
    timeout_seconds: float = 3.0
    reported: dict[str, Condition] | None = None  # None until a replica has answered
    _reachable: bool = field(default=True, repr=False)

    @classmethod
    def from_env(cls, namespace: str) -> GatewayAccounts | None:
        settings = GatewayAccountSettings()
        if not settings.url:
            return None
        if not settings.deployment:
            raise ValueError("LLMHUB_GATEWAY_URL needs LLMHUB_GATEWAY_DEPLOYMENT")
        parts = urlsplit(settings.url)
        try:
            _ = parts.port  # a port that is not a number raises here, not in every poll
        except ValueError:
            parts = urlsplit("")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"LLMHUB_GATEWAY_URL {settings.url!r} is not an http(s) URL")
        return cls(
            url=settings.url.rstrip("/"),
            deployment=settings.deployment,
            namespace=namespace,
            poll_seconds=settings.poll_seconds,
            timeout_seconds=settings.timeout_seconds,
        )

    def condition_for(self, body: Mapping[str, Any]) -> Condition | None:
        """The condition for this LLMProvider, or None when this gateway does not serve it."""
        if self.reported is None:
            return None
        spec = body.get("spec") or {}
        namespace = (body.get("metadata") or {}).get("namespace")
        if (spec.get("gateway") or {}).get("deploymentName") != self.deployment:
            return None
        if self.namespace and namespace != self.namespace:
            return None
        provider = str(spec.get("provider"))
        found = self.reported.get(provider)
        if found is not None:
            return found
        message = f"Deployment {self.deployment} does not report provider {provider}"
        return Condition(ACCOUNT_USABLE, "Unknown", "NotReported", message)

    async def run(self, leadership: Leadership, on_change: Callable[[], None]) -> None:
        """Poll while leading; ``on_change`` after every round that got an answer."""
        timeout = aiohttp.ClientTimeout(total=self.timeout_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                await leadership.leading.wait()
                try:
                    if await self.poll(session):
                        on_change()
                except Exception:  # the next round tries again; syncing never depends on it
                    log.exception("reading the gateway's account state failed")
                await asyncio.sleep(self.poll_seconds)

    async def poll(self, session: aiohttp.ClientSession) -> bool:
        """One round over every replica; False (state kept) when none answered in time."""
        answers: list[Mapping[str, Any]] = []
        try:
            async with asyncio.timeout(self.timeout_seconds):
                urls = await self._replica_urls()
                results = await asyncio.gather(
                    *(self._get(session, url) for url in urls), return_exceptions=True
                )
                answers = [r for r in results if isinstance(r, Mapping)]
        except (TimeoutError, OSError) as exc:
            why = type(exc).__name__
            self._unreachable(f"{why} within {self.timeout_seconds:g} s")
            return False
        if not answers:
            self._unreachable("no replica answered")
            return False
        if not self._reachable:
            log.info("gateway %s answers again", self.url)
        self._reachable = True
        self.reported = merge(answers)
        return True

    async def _replica_urls(self) -> list[str]:
        """``/health/tokens`` on every address the URL's host resolves to, by IP."""
        parts = urlsplit(self.url)
        host = parts.hostname or "localhost"
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = dict.fromkeys(str(info[4][0]) for info in infos)  # ordered, unique
        prefix = parts.path.rstrip("/")
        return [
            f"{parts.scheme}://{f'[{ip}]' if ':' in ip else ip}:{port}{prefix}/health/tokens"
            for ip in addresses
        ]

    @staticmethod
    async def _get(session: aiohttp.ClientSession, url: str) -> Mapping[str, Any]:
        async with session.get(url, allow_redirects=False) as resp:
            resp.raise_for_status()
            body = await resp.json()
        if not isinstance(body, Mapping):
            raise ValueError("not a JSON object")
        return body

    def _unreachable(self, why: str) -> None:
        """Logged once per outage, not every round."""
        if self._reachable:
            log.warning(
                "gateway %s did not answer /health/tokens (%s); keeping the last "
                "known account state",
                self.url,
                why,
            )
        self._reachable = False


def merge(answers: Iterable[Mapping[str, Any]]) -> dict[str, Condition]:
    """One condition per provider: a refusal on any replica wins over the others' silence."""
    merged: dict[str, Condition] = {}
    for answer in answers:
        for provider, entry in answer.items():
            if not isinstance(entry, Mapping):
                continue
            reason = REASONS.get(str(entry.get("error")))
            if reason is not None:
                message = str(entry.get("message") or reason)[:1024]
                merged[str(provider)] = Condition(ACCOUNT_USABLE, "False", reason, message)
            elif str(provider) not in merged:
                message = f"The gateway reports no account refusal for {provider}"
                merged[str(provider)] = Condition(ACCOUNT_USABLE, "True", NO_REFUSAL, message)
    return merged
