"""Status that tools read (kstatus, ``kubectl wait``), rollouts that never block each other, a
gateway Deployment created late, and annotations of deleted LLMProviders: on the real API server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from llmhub_operator import metrics
from tests.operator.identity import operator_kubeconfig
from tests.operator.kopf_harness import FakeSource, GatedSource, Kube, condition, eventually
from tests.operator.kstatus import kstatus, kubectl_wait_ready, ready

TOKEN = "sk-ant-oat01-status-rollout-token-0001"
REFUSED_PREFIX = "llm-mcp-hub.io/refused-"


def _value(value: Any) -> Callable[[], Awaitable[Any]]:
    async def probe() -> Any:
        return value

    return probe


def _keys(name: str) -> tuple[str, str]:
    return f"llm-mcp-hub.io/{name}-hash", f"llm-mcp-hub.io/{name}-secret-uid"


async def test_status_is_in_progress_until_the_gateway_carries_it_and_a_late_deployment_rolls(
    kube: Kube, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source = GatedSource()
    source.set_secret("claude-token", TOKEN)
    kubeconfig = str(kube.real.plane.kubeconfig)  # the test's (admin) view, for kubectl
    # The operator runs with the chart's rights on Deployments: its gateway only, by name.
    chart_rule = {"resourceNames": ["gateway"], "verbs": ["get", "list", "watch", "patch"]}
    operator = await operator_kubeconfig(kube.real, tmp_path / "op.kubeconfig", chart_rule)
    monkeypatch.setenv("KUBECONFIG", str(operator))
    async with kube.operator(source):
        await kube.create_provider("claude", refreshInterval="1h")
        pending = await eventually(
            lambda: kube.provider("claude"), lambda b: b.get("status", {}).get("phase")
        )
        # The first pass is in flight: nothing observed yet, and tools must wait.
        assert pending["status"]["phase"] == "Pending"
        assert "observedGeneration" not in pending["status"]
        assert (kstatus(pending), ready(pending)) == ("InProgress", "Unknown")

        source.gate.set()
        waiting = await eventually(
            lambda: kube.provider("claude"),
            lambda b: condition(b, "GatewayRolled").get("reason") == "DeploymentNotFound",
        )
        assert waiting["status"]["observedGeneration"] == waiting["metadata"]["generation"]
        assert waiting["status"]["phase"] == "Degraded"  # never Ready while GatewayRolled=False
        assert (kstatus(waiting), ready(waiting)) == ("InProgress", "False")
        assert condition(waiting, "Ready")["reason"] == "DeploymentNotFound"
        assert await kubectl_wait_ready(kubeconfig, kube.namespace, "claude", 1) in (None, 1)

        await asyncio.sleep(10)  # the Deployment comes 10 s later; the interval is an hour
        await kube.create_deployment("gateway")
        annotations = await eventually(
            lambda: kube.template_annotations("gateway"),
            lambda a: _keys("claude")[0] in a,
            timeout=6,
        )
        body = await eventually(
            lambda: kube.provider("claude"), lambda b: ready(b) == "True", timeout=6
        )
        assert await kubectl_wait_ready(kubeconfig, kube.namespace, "claude", 10) in (None, 0)
        assert (body["status"]["phase"], kstatus(body)) == ("Ready", "Current")
        assert not condition(body, "Reconciling")
        assert not condition(body, "Stalled")
        assert condition(body, "GatewayRolled")["reason"] == "Rolled"
        assert annotations[_keys("claude")[1]]  # the Secret's uid too
        assert len(source.calls) == 1  # rolled from the last read: no second Key Vault read

        # A new generation: observedGeneration stays at the old one until its pass finished.
        source.gate.clear()
        await kube.patch_spec("claude", {"expiry": {"warnBeforeDays": 4, "maxAgeDays": 365}})
        await eventually(_value(source), lambda s: s.waiting >= 2)
        held = await kube.provider("claude")
        assert (held["metadata"]["generation"], held["status"]["observedGeneration"]) == (2, 1)
        assert (kstatus(held), ready(held)) == ("InProgress", None)
        source.gate.set()
        done = await eventually(
            lambda: kube.provider("claude"),
            lambda b: b["status"].get("observedGeneration") == 2,
        )
        assert (kstatus(done), ready(done), done["status"]["phase"]) == ("Current", "True", "Ready")


@asynccontextmanager
async def _refusing_annotations(kube: Kube) -> AsyncIterator[None]:
    """A real API-server refusal (HTTP 422) of pod-template annotation keys starting with
    REFUSED_PREFIX in this namespace: a ValidatingAdmissionPolicy, as a cluster's policy (or an
    invalid key) would refuse one LLMProvider's annotations."""
    admission = client.AdmissionregistrationV1Api(kube.api)
    name = f"refuse-annotations-{kube.namespace}"
    annotations = "object.spec.template.metadata.annotations"
    await admission.create_validating_admission_policy(
        {
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": ["apps"],
                            "apiVersions": ["v1"],
                            "operations": ["UPDATE"],
                            "resources": ["deployments"],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": f"!has({annotations}) || "
                        f"!{annotations}.exists(k, k.startsWith('{REFUSED_PREFIX}'))",
                        "message": f"pod annotation keys {REFUSED_PREFIX}* are refused",
                        "reason": "Invalid",
                    }
                ],
            },
        }
    )
    await admission.create_validating_admission_policy_binding(
        {
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": kube.namespace}
                    }
                },
            },
        }
    )
    try:
        yield
    finally:
        await admission.delete_validating_admission_policy_binding(name)
        await admission.delete_validating_admission_policy(name)


async def _dry_run_refused(kube: Kube, deployment: str) -> int:
    """The HTTP status of a dry-run patch adding a refused key (422 once the policy acts)."""
    patch = {"spec": {"template": {"metadata": {"annotations": {f"{REFUSED_PREFIX}x": "1"}}}}}
    try:
        await kube.real.apps.patch_namespaced_deployment(
            deployment, kube.namespace, patch, dry_run="All"
        )
    except client.ApiException as exc:
        return int(exc.status)
    return 200


async def test_a_refused_rollout_fails_only_its_own_provider(
    kube: Kube, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="llmhub_operator.rollout")
    await kube.create_deployment("gateway")
    source = GatedSource()
    source.set_secret("good-token", TOKEN)
    source.set_secret("refused-token", TOKEN + "2")
    async with _refusing_annotations(kube):
        await eventually(lambda: _dry_run_refused(kube, "gateway"), lambda s: s == 422)
        async with kube.operator(source):
            await kube.create_provider("good", refreshInterval="1h")
            await kube.create_provider("refused", refreshInterval="1h")
            await eventually(_value(source), lambda s: s.waiting >= 2)
            source.gate.set()  # both passes reach the Deployment together: one batch
            bad = await eventually(
                lambda: kube.provider("refused"),
                lambda b: condition(b, "GatewayRolled").get("status") == "False",
            )
            good = await eventually(lambda: kube.provider("good"), lambda b: ready(b) == "True")
        annotations = await kube.template_annotations("gateway")

    assert "patching for each on its own" in caplog.text  # the batch was refused, then split
    assert set(_keys("good")) <= set(annotations)
    assert not [k for k in annotations if k.startswith(REFUSED_PREFIX)]
    assert (good["status"]["phase"], kstatus(good)) == ("Ready", "Current")
    rolled = condition(bad, "GatewayRolled")
    assert rolled["reason"] == "PatchFailed"
    assert "HTTP 422" in rolled["message"]
    assert f"{REFUSED_PREFIX}* are refused" in rolled["message"]  # the API server's own words
    assert bad["status"]["phase"] == "Degraded"
    assert (ready(bad), condition(bad, "Ready")["reason"]) == ("False", "PatchFailed")
    assert kstatus(bad) == "Failed"  # Stalled: a person must act; not Current
    assert condition(bad, "Synced")["status"] == "True"  # its Secret itself is fine
    # ... and the alerts see it: the refused one's pods may still hold its previous token.
    failing = {n: v for (ns, n, _), v in _rollout_failing().items() if ns == kube.namespace}
    assert (failing["refused"], failing["good"]) == (1.0, 0.0)


def _rollout_failing() -> dict[tuple[str, ...], float]:
    return {
        (s.labels["namespace"], s.labels["name"], s.labels["provider"]): s.value
        for m in metrics.ROLLOUT_FAILING.collect()
        for s in m.samples
    }


async def test_annotations_of_deleted_providers_go_and_nothing_else_rolls(
    kube: Kube, source: FakeSource
) -> None:
    await kube.create_deployment("gateway")
    for name in ("a", "b", "c"):
        source.set_secret(f"{name}-token", f"{TOKEN}-{name}")
    async with kube.operator(source):
        for name in ("a", "b", "c"):
            await kube.create_provider(name, refreshInterval="1h")
        before = await eventually(
            lambda: kube.template_annotations("gateway"),
            lambda a: all(k in a for n in ("a", "b", "c") for k in _keys(n)),
        )
        for name in ("a", "b", "c"):
            await eventually(lambda n=name: kube.provider(n), lambda b: ready(b) == "True")
        rolls = await kube.rollouts("gateway")
        await kube.delete_provider("b")  # the deletion is observed: its annotations go
        after = await eventually(
            lambda: kube.template_annotations("gateway"),
            lambda a: not set(_keys("b")) & set(a),
        )
        assert await kube.rollouts("gateway") == rolls + 1
    assert {k: v for k, v in before.items() if k not in _keys("b")} == after

    await kube.delete_provider("c")  # while no operator runs: found by the next pass
    async with kube.operator(source) as memo:
        final = await eventually(
            lambda: kube.template_annotations("gateway"),
            lambda a: not set(_keys("c")) & set(a),
        )
        assert await kube.rollouts("gateway") == rolls + 2  # one patch each time, nothing else
        assert memo.deployments.watched() == {(kube.namespace, "gateway")}
        await kube.delete_provider("a")  # the last one: its annotations and the watch go
        empty = await eventually(
            lambda: kube.template_annotations("gateway"),
            lambda a: not set(_keys("a")) & set(a),
        )
        assert memo.deployments.watched() == set()
    assert final == {k: v for k, v in after.items() if k not in _keys("c")}
    assert set(_keys("a")) <= set(final)
    assert not [k for k in empty if k.startswith("llm-mcp-hub.io/")]
