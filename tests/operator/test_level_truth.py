"""The scheduler's set follows the API server's truth: uid-keyed, never a dead object's Secret."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import kopf
import pytest

from llmhub_operator.handlers import _secret_event
from llmhub_operator.leader import Leadership
from llmhub_operator.reconcile import Outcome, reconcile
from llmhub_operator.resync import interval_from_env
from llmhub_operator.scheduler import Key, Scheduler
from tests.operator.kopf_harness import FakeSource, Kube, _const, provider_body
from tests.waiting import eventually

NS = "team"


def body(name: str, uid: str, rv: int) -> dict[str, Any]:
    meta = {"namespace": NS, "name": name, "uid": uid, "resourceVersion": str(rv)}
    return {"metadata": {**meta, "generation": 1}, "spec": {}}


def secret(name: str, owner_uid: str) -> dict[str, Any]:
    owner = {
        "apiVersion": "llm-mcp-hub.io/v1alpha1",
        "kind": "LLMProvider",
        "name": name,
        "uid": owner_uid,
        "controller": True,
    }
    return {
        "metadata": {"namespace": NS, "name": f"{name}-credentials", "ownerReferences": [owner]}
    }


async def _never(key: Key, body: Mapping[str, Any], reuse: bool) -> Outcome:
    raise AssertionError("no sync runs in these tests")


def scheduler(*bodies: dict[str, Any]) -> Scheduler:
    sched = Scheduler(_never, Leadership())
    for item in bodies:
        sched.observe(item)
    return sched


def test_a_list_drops_the_gone_and_the_recreated_and_adds_the_missed() -> None:
    sched = scheduler(body("gone", "u1", 10), body("recreated", "u2", 11), body("kept", "u3", 12))
    listed = [body("recreated", "u2-new", 40), body("kept", "u3", 12), body("missed", "u4", 41)]

    dropped = sched.resync(NS, listed, "50")

    assert sorted(dropped) == [(NS, "gone"), (NS, "recreated")]
    assert (NS, "gone") not in sched
    assert sched.uid((NS, "recreated")) == "u2-new"
    assert sched.uid((NS, "kept")) == "u3"
    assert sched.uid((NS, "missed")) == "u4"


def test_an_object_the_watch_showed_after_the_list_was_taken_is_kept() -> None:
    sched = scheduler(body("new", "u1", 60))
    assert sched.resync(NS, [], "50") == []
    assert sched.uid((NS, "new")) == "u1"


def test_a_list_of_one_namespace_leaves_the_others_alone() -> None:
    sched = scheduler(body("elsewhere", "u1", 10))
    assert sched.resync("other", [], "50") == []
    assert (NS, "elsewhere") in sched


def test_an_object_being_deleted_counts_as_gone() -> None:
    sched = scheduler(body("going", "u1", 10))
    going = body("going", "u1", 20)
    going["metadata"]["deletionTimestamp"] = "2026-12-07T00:00:00Z"
    assert sched.resync(NS, [going], "50") == [(NS, "going")]


def test_forgetting_an_earlier_uid_keeps_the_object_scheduled_now() -> None:
    sched = scheduler(body("claude", "old", 10))
    sched.observe(body("claude", "new", 20))  # deleted and re-created under the same name
    assert sched.uid((NS, "claude")) == "new"
    assert sched.forget((NS, "claude"), "old") is False
    assert sched.forget((NS, "claude"), "new") is True
    assert (NS, "claude") not in sched


@pytest.mark.parametrize(("owner", "repaired"), [("dead", False), ("live", True)])
def test_a_secret_event_repairs_only_for_the_live_uid(owner: str, repaired: bool) -> None:
    sched = scheduler(body("claude", "live", 10))
    memo = kopf.Memo(scheduler=sched, deps=SimpleNamespace(written={}))
    on_secret = _secret_event(memo)

    on_secret("DELETED", secret("claude", owner))

    entry = sched._entries[(NS, "claude")]
    assert entry.reuse_fetch is repaired  # a repair runs from the cached Key Vault read


@pytest.mark.parametrize("raw", ["0", "0.5", "-3", "soon", "nan"])
def test_a_resync_interval_that_cannot_work_stops_the_start(
    raw: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMHUB_RESYNC_SECONDS", raw)
    with pytest.raises(ValueError, match="LLMHUB_RESYNC_SECONDS"):
        interval_from_env()


def test_the_resync_interval_defaults_to_five_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMHUB_RESYNC_SECONDS", raising=False)
    assert interval_from_env() == 300
    monkeypatch.setenv("LLMHUB_RESYNC_SECONDS", "2.5")
    assert interval_from_env() == 2.5


async def test_the_periodic_list_drops_the_unreported_and_adds_the_missed(
    kube: Kube, source: FakeSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the real API server, with no watch event at all: only the LIST can do either."""
    monkeypatch.setenv("LLMHUB_RESYNC_SECONDS", "1")
    source.set_secret("claude-token", "sk-ant-oat01-periodic-list-token-0017")
    async with kube.operator(source) as memo:
        await kube.create_provider("claude", gateway={}, refreshInterval="1h")
        await eventually(lambda: kube.provider("claude"), lambda b: "phase" in b.get("status", {}))
        await memo.leadership.lost()  # no pass runs: what changes below is the LIST's doing
        phantom = (kube.namespace, "phantom")
        memo.scheduler.observe(
            provider_body("phantom", kube.namespace)
            | {
                "metadata": {
                    "namespace": kube.namespace,
                    "name": "phantom",
                    "uid": "dead",
                    "resourceVersion": "1",
                }
            }
        )
        memo.deps.written[phantom] = {}
        memo.scheduler.forget((kube.namespace, "claude"))  # as if its ADDED had been missed

        await eventually(_const(memo.scheduler), lambda s: phantom not in s, timeout=10)
        await eventually(_const(memo.scheduler), lambda s: (kube.namespace, "claude") in s)
        written = dict(memo.deps.written)
        memo.leadership.gained()

    assert phantom not in written  # forgotten in Deps too (and so in the metrics)


async def test_a_pass_for_an_object_re_created_under_its_name_writes_nothing(
    kube: Kube, source: FakeSource
) -> None:
    """The pass scheduled for the deleted object meets its successor: another uid, so no
    Secret, no status, no rollout for either; it only forgets (the successor syncs on its own)."""
    source.set_secret("claude-token", "sk-ant-oat01-recreated-token-0017")
    async with kube.operator(source) as memo:
        old = await kube.create_provider("claude", gateway={}, refreshInterval="1h")
        await eventually(lambda: kube.provider("claude"), lambda b: "phase" in b.get("status", {}))
        await memo.leadership.lost()  # nothing else acts meanwhile
        await kube.delete_provider("claude")
        await eventually(kube.secrets, lambda names: "claude-credentials" not in names, timeout=30)
        await kube.create_provider("claude", gateway={}, refreshInterval="1h")

        outcome = await reconcile((kube.namespace, "claude"), old, memo.deps)
        secrets, successor = await kube.secrets(), await kube.provider("claude")
        memo.leadership.gained()

    assert outcome.gone
    assert "claude-credentials" not in secrets
    assert "status" not in successor, successor.get("status")


async def test_a_broken_watch_lists_again_even_with_no_llmprovider_left_to_re_list(
    kube: Kube, source: FakeSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kopf's re-list of an empty namespace shows nothing; the managed-Secret watch breaking
    (here: a real API-server restart) is what asks for the LIST that drops the missed one."""
    monkeypatch.setenv("LLMHUB_RESYNC_SECONDS", "3600")  # no periodic LIST in this test
    async with kube.operator(source) as memo:
        await memo.leadership.lost()  # no pass runs: only the LIST can drop it
        phantom = (kube.namespace, "phantom")
        memo.scheduler.observe(
            {"metadata": {"namespace": kube.namespace, "name": "phantom", "uid": "dead"}}
        )
        await asyncio.to_thread(kube.real.plane.restart_apiserver)
        await eventually(_const(memo.scheduler), lambda s: phantom not in s, timeout=30)
        memo.leadership.gained()
