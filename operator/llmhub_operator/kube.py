"""The Kubernetes API client for Secrets, Deployments and CR status (kubernetes_asyncio)."""

from __future__ import annotations

import os

from kubernetes_asyncio import client, config

SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


async def make_api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """In-cluster credentials when running in a pod, else the kubeconfig (explicit path first)."""
    configuration = client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG") or None
    if path is None and _in_cluster():
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        await config.load_kube_config(config_file=path, client_configuration=configuration)
    return client.ApiClient(configuration=configuration)


def _in_cluster() -> bool:
    return os.path.exists(SERVICE_ACCOUNT_TOKEN)


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, client.ApiException) and exc.status == 404
