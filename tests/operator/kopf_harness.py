"""kopf running for real against a real API server, with a Key Vault double.

Each test gets its own namespace on the session's control plane (tests/k8s); the operator runs
in the test's event loop, watching only that namespace, so tests can reach into its memo.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import kopf
import pytest
from kubernetes_asyncio import client

from llmhub_operator.errors import SourceError, SourceNotFound
from llmhub_operator.keyvault import FetchedSecret
from tests.k8s.kube import RealKube
from tests.waiting import eventually

GROUP, VERSION, PLURAL = "llm-mcp-hub.io", "v1alpha1", "llmproviders"
VAULT = "https://llm-mcp-hub-kv.vault.azure.net"
T = TypeVar("T")


@dataclass
class FakeSource:
    """In-memory Key Vault with KeyVaultSource's fetch signature; failures are queued per name."""

    versions: dict[str, list[FetchedSecret]] = field(default_factory=dict)
    failures: dict[str, list[SourceError]] = field(default_factory=dict)
    calls: list[tuple[str, str | None, float]] = field(default_factory=list)
    closed: bool = False

    def set_secret(
        self,
        name: str,
        value: str,
        *,
        expires: datetime | None = None,
        created: datetime | None = None,
    ) -> str:
        version = uuid.uuid4().hex
        now = datetime.now(UTC)
        secret = FetchedSecret(value, version, created or now, now, expires, True)
        self.versions.setdefault(name, []).append(secret)
        return version

    def fail(self, name: str, error: SourceError, times: int = 1) -> None:
        self.failures.setdefault(name, []).extend([error] * times)

    async def fetch(
        self, vault_url: str, name: str, version: str | None = None, identity: Any = None
    ) -> FetchedSecret:
        self.calls.append((name, version, asyncio.get_running_loop().time()))
        queued = self.failures.get(name)
        if queued:
            raise queued.pop(0)
        for secret in reversed(self.versions.get(name, [])):
            if version in (None, secret.version):
                return secret
        raise SourceNotFound(f"secret {name} not found in {vault_url}")

    async def aclose(self) -> None:
        self.closed = True


@dataclass
class GatedSource(FakeSource):
    """Key Vault reads wait until the test opens ``gate``: a pass can be held in flight."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: int = 0  # reads that reached the gate

    async def fetch(
        self, vault_url: str, name: str, version: str | None = None, identity: Any = None
    ) -> FetchedSecret:
        self.waiting += 1
        await self.gate.wait()
        return await super().fetch(vault_url, name, version, identity)


@dataclass
class Kube:
    """Test-side view of the cluster through the same client library the operator uses."""

    api: client.ApiClient
    namespace: str
    real: RealKube

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    async def create_provider(self, name: str, **spec: Any) -> dict[str, Any]:
        body = provider_body(name, self.namespace, **spec)
        return await self.custom.create_namespaced_custom_object(  # type: ignore[no-any-return]
            GROUP, VERSION, self.namespace, PLURAL, body
        )

    async def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        await self.real.patch_spec(name, spec)

    async def provider(self, name: str) -> dict[str, Any]:
        return await self.real.provider(name)

    async def delete_provider(self, name: str) -> None:
        await self.real.delete_provider(name)

    async def provider_names(self) -> set[str]:
        items = await self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL
        )
        return {item["metadata"]["name"] for item in items["items"]}

    async def secrets(self) -> set[str]:
        listed = await client.CoreV1Api(self.api).list_namespaced_secret(self.namespace)
        return {item.metadata.name for item in listed.items}

    async def create_deployment(self, name: str) -> None:
        await self.real.create_deployment(name)

    async def template_annotations(self, name: str) -> dict[str, str]:
        return await self.real.template_annotations(name)

    async def rollouts(self, name: str) -> int:
        """Pod-template changes since creation: each one is a rollout (a new ReplicaSet)."""
        dep = await self.real.deployment(name)
        return int(dep.metadata.generation) - 1

    async def wait_fetches(self, source: FakeSource, count: int) -> None:
        """Let the scheduler re-read Key Vault ``count`` more times."""
        target = len(source.calls) + count
        await eventually(_const(None), lambda _: len(source.calls) >= target, timeout=10)

    async def secret(self, name: str) -> client.V1Secret:
        return await self.real.secret(name)

    async def secret_raw(self, name: str) -> dict[str, Any]:
        secret = await self.secret(name)
        return self.api.sanitize_for_serialization(secret)  # type: ignore[no-any-return]

    async def events(self) -> list[dict[str, Any]]:
        found = await self.real.events()
        return [self.api.sanitize_for_serialization(e) for e in found]

    async def event_reasons(self, reason: str) -> list[dict[str, Any]]:
        return [e for e in await self.events() if e.get("reason") == reason]

    @asynccontextmanager
    async def operator(self, source: Any) -> AsyncIterator[kopf.Memo]:
        """Run the real operator (all handlers) in this event loop until the block ends."""
        import llmhub_operator.handlers  # noqa: F401  (registers the handlers)

        memo = kopf.Memo(source=source, namespaces=[self.namespace])
        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(
            kopf.operator(
                standalone=True,
                namespaces=[self.namespace],
                memo=memo,
                stop_flag=stop,
                ready_flag=ready,
            )
        )
        try:
            await asyncio.wait_for(ready.wait(), 15)
            yield memo
        finally:
            stop.set()
            await asyncio.wait({task}, timeout=10)
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 15)


def _const(value: T) -> Callable[[], Awaitable[T]]:
    async def probe() -> T:
        return value

    return probe


def provider_body(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    full = {
        "provider": "claude",
        "model": "claude-sonnet-4-5-20250929",
        "source": {"azureKeyVault": {"vaultUrl": VAULT, "secretName": f"{name}-token"}},
        "refreshInterval": "1s",
        "gateway": {"deploymentName": "gateway"},
        "expiry": {"warnBeforeDays": 3, "maxAgeDays": 365},
    }
    full.update(spec)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "LLMProvider",
        "metadata": {"name": name, "namespace": namespace},
        "spec": full,
    }


def decode(secret: client.V1Secret, key: str) -> str:
    return base64.b64decode(secret.data[key]).decode()


def condition(body: dict[str, Any], type_: str) -> dict[str, Any]:
    for cond in body.get("status", {}).get("conditions", []):
        if cond["type"] == type_:
            return dict(cond)
    return {}


@pytest.fixture
async def kube(k8s: RealKube, monkeypatch: pytest.MonkeyPatch) -> Kube:
    """The test's namespace on the real control plane; kopf and our client find it by KUBECONFIG."""
    monkeypatch.setenv("KUBECONFIG", str(k8s.plane.kubeconfig))
    return Kube(api=k8s.api, namespace=k8s.namespace, real=k8s)


@pytest.fixture
def source() -> FakeSource:
    return FakeSource()
