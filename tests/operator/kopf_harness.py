"""kopf running for real against kmock, with a Key Vault double speaking KeyVaultSource's API."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp.web
import kmock as kmock_lib
import kopf
import pytest
from kubernetes_asyncio import client

from llmhub_operator.errors import SourceError, SourceNotFound
from llmhub_operator.keyvault import FetchedSecret
from llmhub_operator.kube import make_api_client
from tests.waiting import eventually

NS = "llm-mcp-hub"
GROUP, VERSION, PLURAL = "llm-mcp-hub.io", "v1alpha1", "llmproviders"
VAULT = "https://llm-mcp-hub-kv.vault.azure.net"
T = TypeVar("T")
_RESOURCE_VERSIONS = itertools.count(1)


class ApiServer(kmock_lib.KubernetesEmulator):  # type: ignore[misc]
    """kmock plus what a real API server does on create: name from generateName, uid, versions.

    ``fail_next`` refuses requests before they reach the store (kmock's own reactions still
    store a PATCH they answer with an error), as a real API server's 500 would.
    """

    failures: list[tuple[str, Any, int]]

    def fail_next(self, plural: str, action: Any, status: int = 500) -> None:
        """Refuse the next ``action`` on ``plural`` with HTTP ``status``, storing nothing."""
        self.__dict__.setdefault("failures", []).append((plural, action, status))

    async def _handle(self, request: kmock_lib.Request) -> aiohttp.web.StreamResponse:
        for queued in self.__dict__.get("failures", []):
            plural, action, status = queued
            if request.resource is not None and (request.resource.plural, request.action) == (
                plural,
                action,
            ):
                self.failures.remove(queued)
                body = {"kind": "Status", "status": "Failure", "code": status, "reason": "Fault"}
                return aiohttp.web.json_response(body, status=status)
        # A real API server moves resourceVersion on every write; kopf relies on it to tell its
        # own patches' echoes from new changes (else it re-runs handlers on stale events).
        updating = request.resource is not None and request.action == kmock_lib.action.UPDATE
        if updating and isinstance(request.data, dict):
            meta = request.data.setdefault("metadata", {})
            meta["resourceVersion"] = str(next(_RESOURCE_VERSIONS))
        if request.resource is not None and request.action == kmock_lib.action.CREATE:
            meta = request.data.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:8]}"
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("resourceVersion", str(next(_RESOURCE_VERSIONS)))
            meta.setdefault("generation", 1)
            meta.setdefault("creationTimestamp", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        return await super()._handle(request)  # type: ignore[no-any-return]


@pytest.fixture
def kmock_options() -> dict[str, Any]:
    return {"cls": ApiServer}


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

    async def fetch(self, vault_url: str, name: str, version: str | None = None) -> FetchedSecret:
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
class Kube:
    """Test-side view of the emulated cluster through the same client library the operator uses."""

    api: client.ApiClient
    kmock: Any

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    async def create_provider(self, name: str, **spec: Any) -> dict[str, Any]:
        body = provider_body(name, **spec)
        return await self.custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body)  # type: ignore[no-any-return]

    async def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        await self.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            NS,
            PLURAL,
            name,
            {"spec": spec},
            _content_type="application/merge-patch+json",
        )

    async def provider(self, name: str) -> dict[str, Any]:
        return await self.custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name)  # type: ignore[no-any-return]

    async def delete_provider(self, name: str) -> None:
        await self.custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name)

    async def provider_names(self) -> set[str]:
        items = await self.custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)
        return {item["metadata"]["name"] for item in items["items"]}

    async def secrets(self) -> set[str]:
        listed = await client.CoreV1Api(self.api).list_namespaced_secret(NS)
        return {item.metadata.name for item in listed.items}

    async def create_deployment(self, name: str) -> None:
        labels = {"app": name}
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS, "labels": labels},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "gateway", "image": "gateway:test"}]},
                },
            },
        }
        await client.AppsV1Api(self.api).create_namespaced_deployment(NS, body)

    async def template_annotations(self, name: str) -> dict[str, str]:
        dep = await client.AppsV1Api(self.api).read_namespaced_deployment(name, NS)
        return dict(dep.spec.template.metadata.annotations or {})

    def deployment_patches(self, name: str) -> list[dict[str, Any]]:
        """Bodies of every PATCH the Deployment received: each one is a rollout."""
        return [
            dict(r.data)
            for r in list(self.kmock)
            if r.resource is not None
            and r.resource.plural == "deployments"
            and r.action == kmock_lib.action.UPDATE
            and r.name == name
        ]

    async def wait_fetches(self, source: FakeSource, count: int) -> None:
        """Let the refresh daemon re-read Key Vault ``count`` more times."""
        target = len(source.calls) + count
        await eventually(_const(None), lambda _: len(source.calls) >= target, timeout=10)

    async def secret(self, name: str) -> client.V1Secret:
        return await client.CoreV1Api(self.api).read_namespaced_secret(name, NS)

    async def secret_raw(self, name: str) -> dict[str, Any]:
        secret = await self.secret(name)
        return self.api.sanitize_for_serialization(secret)  # type: ignore[no-any-return]

    def events(self) -> list[dict[str, Any]]:
        found = []
        for (res, _ns, _name), obj in self.kmock.objects.items():
            if res.plural == "events" and not obj.deleted:
                found.append(dict(obj))
        return found

    def event_reasons(self, reason: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("reason") == reason]


def _const(value: T) -> Callable[[], Awaitable[T]]:
    async def probe() -> T:
        return value

    return probe


def provider_body(name: str, **spec: Any) -> dict[str, Any]:
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
        "metadata": {"name": name, "namespace": NS},
        "spec": full,
    }


def decode(secret: client.V1Secret, key: str) -> str:
    return base64.b64decode(secret.data[key]).decode()


def condition(body: dict[str, Any], type_: str) -> dict[str, Any]:
    for cond in body.get("status", {}).get("conditions", []):
        if cond["type"] == type_:
            return dict(cond)
    return {}


def write_kubeconfig(path: Path, server: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kmock", "cluster": {"server": server}}],
        "users": [{"name": "kmock", "user": {"token": "kmock-test"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "kmock"}}],
        "current-context": "kmock",
    }
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
async def kube(kmock: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Kube]:
    kmock.resources.load_bundled()
    kmock.resources[f"{GROUP}/{VERSION}/{PLURAL}"] = kmock.ResourceInfo(
        kind="LLMProvider",
        singular="llmprovider",
        namespaced=True,
        verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
        subresources={"status"},
    )
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", str(kmock.url).rstrip("/"))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    api = await make_api_client(str(kubeconfig))
    try:
        yield Kube(api=api, kmock=kmock)
    finally:
        await api.close()


@asynccontextmanager
async def running_operator(source: Any) -> AsyncIterator[kopf.Memo]:
    """Run the real operator (all handlers) in this event loop until the block ends."""
    import llmhub_operator.handlers  # noqa: F401  (registers the handlers)

    memo = kopf.Memo(source=source)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        kopf.operator(
            standalone=True,
            clusterwide=True,
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
        # kopf then waits 5 s for every task born after its start, which here includes kmock's
        # server-side watch streams (same event loop); past the handlers' exit, cancel instead.
        await asyncio.wait({task}, timeout=1.5)
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 15)


@pytest.fixture
def source() -> FakeSource:
    return FakeSource()
