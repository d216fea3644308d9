"""The Kubernetes API client for Secrets, Deployments and CR status (kubernetes_asyncio)."""

from __future__ import annotations

import os
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config, watch

SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
DEFAULT_REQUEST_TIMEOUT_S = 30.0


async def make_api_client(
    kubeconfig: str | None = None, *, request_timeout: float = DEFAULT_REQUEST_TIMEOUT_S
) -> client.ApiClient:
    """In-cluster credentials when running in a pod, else the kubeconfig (explicit path first)."""
    configuration = client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG") or None
    if path is None and _in_cluster():
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        await config.load_kube_config(config_file=path, client_configuration=configuration)
    return BoundedApiClient(configuration=configuration, request_timeout=request_timeout)


class BoundedApiClient(client.ApiClient):
    """Every call has a timeout: kubernetes_asyncio sends none unless a call names one (and its
    per-call default overrides any session timeout), so a black-holed API server would hang a
    call forever. A call may still name its own ``_request_timeout``."""

    def __init__(self, *args: Any, request_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request_timeout = request_timeout

    def request(
        self,
        method: str,
        url: str,
        query_params: Any | None = None,
        headers: dict[str, str] | None = None,
        post_params: dict[str, Any] | None = None,
        body: Any | None = None,
        _preload_content: bool = True,
        _request_timeout: float | tuple[float] | aiohttp.ClientTimeout | None = None,
    ) -> Any:
        return super().request(
            method,
            url,
            query_params=query_params,
            headers=headers,
            post_params=post_params,
            body=body,
            _preload_content=_preload_content,
            _request_timeout=_request_timeout or self.default_timeout(query_params),
        )

    def default_timeout(self, query_params: Any) -> aiohttp.ClientTimeout:
        """A plain call: ``request_timeout`` in all. A watch streams until the server ends it
        after its ``timeoutSeconds``: connecting is bounded as usual, the stream that long
        plus ``request_timeout``."""
        params = dict(query_params or [])
        if not params.get("watch"):
            return aiohttp.ClientTimeout(total=self.request_timeout)
        server = params.get("timeoutSeconds")
        return aiohttp.ClientTimeout(
            total=float(server) + self.request_timeout if server else None,
            connect=self.request_timeout,
        )


def _in_cluster() -> bool:
    return os.path.exists(SERVICE_ACCOUNT_TOKEN)


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, client.ApiException) and exc.status == 404


@dataclass(frozen=True, slots=True)
class ApiFailure:
    message: str
    transient: bool  # worth a quick retry; else it needs a person and waits for the interval


_NEEDS_A_PERSON = {
    400: "the request was refused as malformed",
    403: (
        "the operator's RBAC does not allow it; the chart grants Secret writes only in the "
        "namespaces it watches and Deployment patches only on its own gateway, so fix "
        "spec.gateway.deploymentName / spec.target.secretName or extend the operator's Role"
    ),
    404: "it does not exist",
    422: "the API server rejected the change as invalid",
}


def api_failure(exc: client.ApiException, doing: str) -> ApiFailure:
    """Words for status and events from an API error: status code and reason, never a body."""
    status = exc.status or 0
    if status in _NEEDS_A_PERSON:
        return ApiFailure(f"{doing} failed with HTTP {status}: {_NEEDS_A_PERSON[status]}", False)
    return ApiFailure(f"{doing} failed with HTTP {status}; retrying", True)


async def raw_json(call: Awaitable[Any]) -> dict[str, Any]:
    """Await an API call made with ``_preload_content=False``: its JSON, or an ApiException.

    Raw calls keep Secret bodies out of the client's DEBUG log and skip model conversion; the
    client does not check their status, so this does (never keeping the body in the error).
    """
    response = await call
    try:
        if not 200 <= response.status <= 299:
            raise client.ApiException(status=response.status, reason=response.reason)
        body: dict[str, Any] = await response.json()
        return body
    finally:
        response.release()


class RawWatch(watch.Watch):
    """A watch whose events keep the object as the API server sent it (``raw_object`` and
    ``object`` alike): no model objects, which for a gateway Deployment carrying a thousand
    LLMProviders' annotations cost milliseconds per event, for every rollout."""

    def get_return_type(self, func: object) -> Any:
        return None  # unmarshal_event then skips deserialization
