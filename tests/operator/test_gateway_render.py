"""LLMGateway without an API server: rendering, status writes, and which changes make passes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from llmhub_operator.gateways.controller import GatewayQueue
from llmhub_operator.gateways.model import (
    GatewaySettings,
    ServedProvider,
    parse_gateway,
    served_providers,
)
from llmhub_operator.gateways.render import Owner, render
from llmhub_operator.gateways.status import rollout_problem, status_patch, summary, unchanged
from llmhub_operator.leader import Leadership
from llmhub_operator.model import InvalidSpec

OWNER = Owner("hub", "team-a", "uid-1")
SETTINGS = GatewaySettings(image="gw:1")


def provider(name: str, kind: str, **labels: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"provider": kind},
        "status": {"contentHash": f"sha256:{name}", "token": {"status": "valid"}},
    }


LISTED = [
    provider("claude", "claude", team="a"),
    provider("gemini", "gemini", team="a"),
    provider("other-claude", "claude", team="b"),
]


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in objects}


def test_a_selector_serves_the_matching_providers_and_only_their_secrets_are_mounted() -> None:
    spec = parse_gateway({"providers": {"selector": {"matchLabels": {"team": "a"}}}})
    served = served_providers(spec, LISTED)
    objects = by_kind(render(OWNER, spec, served, SETTINGS))
    pod = objects["Deployment/hub"]["spec"]["template"]["spec"]
    refs = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    refs |= {
        e["valueFrom"]["secretKeyRef"]["name"]
        for e in pod["containers"][0]["env"]
        if "valueFrom" in e
    }
    assert refs == {"claude-credentials", "gemini-credentials"}
    for obj in objects.values():
        assert obj["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert pod["containers"][0]["image"] == "gw:1"
    assert pod["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_two_providers_of_one_kind_or_a_missing_name_is_a_spec_error() -> None:
    both = parse_gateway({"providers": {"names": ["claude", "other-claude"]}})
    with pytest.raises(InvalidSpec, match="one claude LLMProvider per gateway"):
        served_providers(both, LISTED)
    with pytest.raises(InvalidSpec, match="no LLMProvider ghost"):
        served_providers(parse_gateway({"providers": {"names": ["ghost"]}}), LISTED)


def test_hpa_owns_replicas_and_optional_objects_follow_the_spec() -> None:
    spec = parse_gateway(
        {
            "providers": {"names": ["claude"]},
            "hpa": {"enabled": True},
            "pdb": {"enabled": False},
            "networkPolicy": {"enabled": False},
            "redis": {"managed": True},
        }
    )
    objects = by_kind(render(OWNER, spec, served_providers(spec, LISTED), SETTINGS))
    assert "replicas" not in objects["Deployment/hub"]["spec"]
    assert {"HorizontalPodAutoscaler/hub", "Deployment/hub-redis", "Service/hub-redis"} <= set(
        objects
    )
    assert "PodDisruptionBudget/hub" not in objects
    assert "Ingress/hub" not in objects, "no ingressHost, no Ingress"
    assert "NetworkPolicy/hub" not in objects
    env = {
        e["name"]: e.get("value")
        for e in objects["Deployment/hub"]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["REDIS_URL"] == "redis://hub-redis:6379/0"


def test_a_status_written_once_is_not_written_again() -> None:
    served = [ServedProvider("claude", "claude", "claude-credentials", None, "h", "valid", None)]
    urls = {"rest": "r", "openai": "o", "mcp": "m"}

    def write(previous: dict[str, Any]) -> dict[str, Any]:
        result = summary(None, stalled=False)
        return status_patch(
            previous,
            result,
            now=datetime.now(UTC),
            generation=1,
            providers=served,
            urls=urls,
            ready_replicas=1,
        )

    first = write({})
    again = write(first)
    assert unchanged(first, again)
    assert not unchanged({}, first)


async def test_only_a_provider_change_a_gateway_uses_makes_its_namespace_gateways_due() -> None:
    queue = GatewayQueue(None, SETTINGS, Leadership())  # type: ignore[arg-type]  (never applies)
    queue.observe({"metadata": {"namespace": "team-a", "name": "hub"}})
    queue.observe({"metadata": {"namespace": "team-b", "name": "hub"}})
    body = {**provider("claude", "claude"), "metadata": {"name": "claude", "namespace": "team-a"}}

    def after(change: dict[str, Any], deleted: bool = False) -> frozenset[tuple[str, str]]:
        queue._due.clear()  # as after a pass
        queue.provider_changed(change, deleted)
        return queue.pending

    assert after(body) == {("team-a", "hub")}
    synced_again = {**body, "status": {**body["status"], "lastSyncTime": "2026-12-07T00:00:00Z"}}
    assert after(synced_again) == set(), "a sync that changed nothing a gateway uses"
    rotated = {**body, "status": {**body["status"], "contentHash": "sha256:new"}}
    assert after(rotated) == {("team-a", "hub")}
    assert after(rotated, deleted=True) == {("team-a", "hub")}


def test_ready_only_when_the_current_template_is_rolled_out_and_available() -> None:
    def deployment(generation: int, observed: int, updated: int, available: int) -> dict[str, Any]:
        return {
            "metadata": {"generation": generation},
            "spec": {"replicas": 2},
            "status": {
                "observedGeneration": observed,
                "updatedReplicas": updated,
                "availableReplicas": available,
                "conditions": [{"type": "Available", "status": "True"}],
            },
        }

    assert rollout_problem(deployment(3, 2, 2, 2)).reason == "RolloutPending"  # type: ignore[union-attr]
    assert rollout_problem(deployment(3, 3, 1, 2)).reason == "RolloutInProgress"  # type: ignore[union-attr]
    assert rollout_problem(deployment(3, 3, 2, 2)) is None


async def test_a_replica_that_does_not_lead_applies_nothing_and_keeps_it_due() -> None:
    leadership = Leadership()  # never gained
    queue = GatewayQueue(None, GatewaySettings(resync_seconds=0.05), leadership)  # type: ignore[arg-type]
    queue.observe({"metadata": {"namespace": "team-a", "name": "hub"}})
    task = asyncio.create_task(queue.run())
    try:
        await asyncio.sleep(0.3)  # several resync intervals
        assert queue.pending == {("team-a", "hub")}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_an_ingress_host_gets_an_ingress_to_the_service_and_is_an_allowed_mcp_host() -> None:
    spec = parse_gateway(
        {
            "providers": {"names": ["claude"]},
            "exposure": {"ingressHost": "hub.example", "ingressClassName": "nginx"},
        }
    )
    objects = by_kind(render(OWNER, spec, served_providers(spec, LISTED), SETTINGS))
    ingress = objects["Ingress/hub"]["spec"]
    assert ingress["ingressClassName"] == "nginx"
    assert "tls" not in ingress
    [rule] = ingress["rules"]
    assert rule["host"] == "hub.example"
    assert rule["http"]["paths"][0]["backend"]["service"]["name"] == "hub"
    env = {e["name"]: e.get("value") for e in container_of(objects)["env"]}
    assert "hub.example" in env["MCP_ALLOWED_HOSTS"].split(",")
    assert env["MCP_RESOURCE_URL"] == "https://hub.example/mcp"


def container_of(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = objects["Deployment/hub"]["spec"]["template"]["spec"]["containers"][
        0
    ]
    return container
