"""``kubernetes`` mode: in-cluster callers present a projected ServiceAccount token, which the
API server checks for us (TokenReview; the gateway's RBAC is exactly ``tokenreviews: create``).

The review names the audience the gateway expects, so a token minted for another service is
refused; the ServiceAccount must then be on the allow-list (``<namespace>/<name>`` or
``<namespace>/*``). Accepted reviews are cached briefly by the token's hash, so a busy caller
costs the API server one review per ``cache_s``, not one per request.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import ssl
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from llmhub_gateway.auth.principal import Principal
from llmhub_gateway.errors import Forbidden, GatewayError, Unauthenticated

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
SA_PREFIX = "system:serviceaccount:"
REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
CACHE_MAX = 1024


class ReviewUnavailable(GatewayError):
    """The API server could not review the token (503): the caller retries."""

    status_code = 503
    error_type = "auth_unavailable"
    retry_after = 5


@dataclass(frozen=True, slots=True)
class ApiServer:
    """Where to send TokenReviews and how to authenticate there."""

    url: str
    ca: ssl.SSLContext | bool
    token_file: Path | None = None
    token: str | None = None

    def bearer(self) -> str:
        if self.token_file is not None:  # projected: rotated by the kubelet, so re-read
            return self.token_file.read_text(encoding="utf-8").strip()
        return self.token or ""

    @classmethod
    def in_cluster(cls) -> ApiServer:
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        if not host or not (SA_DIR / "token").exists():
            raise ValueError(
                "AUTH_MODES has 'kubernetes' but this is not a pod with a mounted ServiceAccount "
                "token; set AUTH_KUBERNETES_KUBECONFIG outside a cluster"
            )
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        host = f"[{host}]" if ":" in host else host
        context = ssl.create_default_context(cafile=str(SA_DIR / "ca.crt"))
        return cls(f"https://{host}:{port}", context, token_file=SA_DIR / "token")

    @classmethod
    def from_kubeconfig(cls, path: Path) -> ApiServer:
        """A kubeconfig with a token user (the current context's)."""
        config: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
        current = config.get("current-context")
        context = next(c["context"] for c in config["contexts"] if c["name"] == current)
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
        ca: ssl.SSLContext | bool = True
        if "certificate-authority-data" in cluster:
            pem = base64.b64decode(cluster["certificate-authority-data"]).decode()
            ca = ssl.create_default_context(cadata=pem)
        elif "certificate-authority" in cluster:
            ca = ssl.create_default_context(cafile=cluster["certificate-authority"])
        if "token" not in user and "tokenFile" not in user:
            raise ValueError("AUTH_KUBERNETES_KUBECONFIG: the user needs a token or tokenFile")
        token_file = Path(user["tokenFile"]) if "tokenFile" in user else None
        return cls(str(cluster["server"]), ca, token_file=token_file, token=user.get("token"))


def _allowed(patterns: Collection[str], namespace: str, name: str) -> bool:
    return f"{namespace}/{name}" in patterns or f"{namespace}/*" in patterns


class KubernetesVerifier:
    mode = "kubernetes"

    def __init__(
        self,
        api: ApiServer,
        *,
        audience: str,
        allowed: Collection[str],
        cache_s: float = 30.0,
    ) -> None:
        self._api = api
        self._audience = audience
        self._allowed = frozenset(allowed)
        self._cache_s = cache_s
        self._cache: dict[bytes, tuple[float, Principal]] = {}
        self._http = httpx.AsyncClient(base_url=api.url, verify=api.ca, timeout=10)

    async def verify(self, token: str) -> Principal | None:
        if token.count(".") != 2:
            return None  # not a JWT: not a ServiceAccount token
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        status = await self._review(token)
        if not status.get("authenticated") or self._audience not in (status.get("audiences") or []):
            raise Unauthenticated("service account token not accepted")
        username = str((status.get("user") or {}).get("username", ""))
        if not username.startswith(SA_PREFIX) or username.count(":") != 3:
            raise Unauthenticated("not a service account token")
        namespace, name = username[len(SA_PREFIX) :].split(":")
        if not _allowed(self._allowed, namespace, name):
            raise Forbidden(f"service account {namespace}/{name} is not an allowed caller")
        caller = f"{namespace}/{name}"
        principal = Principal(caller, self.mode, label=caller, subject=username)
        if len(self._cache) >= CACHE_MAX:
            self._cache.clear()
        self._cache[digest] = (time.monotonic() + self._cache_s, principal)
        return principal

    async def _review(self, token: str) -> dict[str, Any]:
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": [self._audience]},
        }
        try:
            answer = await self._http.post(
                REVIEW_PATH,
                content=json.dumps(body),
                headers={
                    "Authorization": f"Bearer {self._api.bearer()}",
                    "Content-Type": "application/json",
                },
            )
        except httpx.HTTPError as exc:
            raise ReviewUnavailable(f"token review failed: {type(exc).__name__}") from None
        if answer.status_code != 201 and answer.status_code != 200:
            raise ReviewUnavailable(
                f"token review refused by the API server ({answer.status_code})"
            )
        status: dict[str, Any] = answer.json().get("status") or {}
        return status

    async def aclose(self) -> None:
        await self._http.aclose()
