"""``llm-mcp-hub status`` against the real control plane (statuses written via the subresource)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmhub_cli.app import main
from llmhub_common.tokens import format_rfc3339
from tests.k8s.kube import GROUP, PLURAL, VERSION, RealKube

VAULT = "https://kv.vault.azure.net"


async def with_status(k8s: RealKube, name: str, provider: str, status: dict[str, Any]) -> None:
    await k8s.create_provider(name, VAULT, provider=provider)
    await k8s.custom.patch_namespaced_custom_object_status(  # type: ignore[call-arg]
        GROUP,
        VERSION,
        k8s.namespace,
        PLURAL,
        name,
        {"status": status},
        _content_type="application/merge-patch+json",
    )


def token_status(kind: str, days: int, now: datetime) -> dict[str, Any]:
    return {
        "status": kind,
        "daysRemaining": days,
        "expiresAt": format_rfc3339(now + timedelta(days=days)),
    }


def kubeconfig_in(k8s: RealKube, path: Path) -> Path:
    """The admin kubeconfig with the test's namespace as the context's default."""
    config = yaml.safe_load(k8s.plane.kubeconfig.read_text())
    for context in config["contexts"]:
        context["context"]["namespace"] = k8s.namespace
    path.write_text(yaml.safe_dump(config))
    return path


async def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, args)
    out, err = capsys.readouterr()
    return code, out, err


async def test_status_lists_the_context_namespace_and_fails_on_a_warning(
    k8s: RealKube, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    synced = format_rfc3339(now - timedelta(minutes=5))
    await with_status(
        k8s,
        "claude",
        "claude",
        {
            "phase": "Ready",
            "lastSyncTime": synced,
            "lastRotationTime": format_rfc3339(now - timedelta(days=2)),
            "token": token_status("valid", 40, now),
            "conditions": [
                {
                    "type": "TokenValid",
                    "status": "True",
                    "reason": "Valid",
                    "message": "Token is valid",
                    "lastTransitionTime": synced,
                }
            ],
        },
    )
    await with_status(
        k8s,
        "gemini",
        "gemini",
        {
            "phase": "Ready",
            "lastSyncTime": synced,
            "token": token_status("warning", 2, now),
            "conditions": [
                {
                    "type": "TokenValid",
                    "status": "True",
                    "reason": "ExpiringSoon",
                    "message": "Token expires soon, please refresh",
                    "lastTransitionTime": synced,
                }
            ],
        },
    )
    config = kubeconfig_in(k8s, tmp_path / "kubeconfig")

    code, out, err = await cli(["status", "--kubeconfig", str(config)], capsys)
    assert code == 1, err  # a token in warning: cron jobs and CI see a failure
    header, *lines = out.strip().splitlines()
    assert header.split()[:4] == ["PROVIDER", "NAME", "PHASE", "TOKEN"]
    assert "NAMESPACE" not in header
    rows = {line.split()[1]: line for line in lines}
    assert rows["claude"].split()[:5] == ["claude", "claude", "Ready", "valid", "40"]
    assert "5m ago" in rows["claude"]
    assert "2d ago" in rows["claude"]
    assert rows["gemini"].split()[:5] == ["gemini", "gemini", "Ready", "warning", "2"]
    assert rows["gemini"].endswith("Token expires soon, please refresh")

    await k8s.custom.delete_namespaced_custom_object(
        GROUP, VERSION, k8s.namespace, PLURAL, "gemini"
    )
    code, out, _ = await cli(
        ["status", "-n", k8s.namespace, "-o", "json", "--kubeconfig", str(config)], capsys
    )
    assert code == 0  # the only one left is valid
    (item,) = json.loads(out)["items"]
    assert item["name"] == "claude"
    assert item["token"] == "valid"
    assert item["days_left"] == 40
    assert item["last_sync"] == synced


async def test_status_all_namespaces_shows_expired_and_sync_failures(
    k8s: RealKube, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    await with_status(
        k8s,
        "old",
        "claude",
        {
            "phase": "Degraded",
            "token": token_status("expired", 0, now),
            "conditions": [
                {
                    "type": "Synced",
                    "status": "False",
                    "reason": "Forbidden",
                    "message": "Key Vault refused the read",
                    "lastTransitionTime": format_rfc3339(now),
                }
            ],
        },
    )
    code, out, _ = await cli(["status", "-A", "--kubeconfig", str(k8s.plane.kubeconfig)], capsys)
    assert code == 1
    assert out.splitlines()[0].startswith("NAMESPACE")
    (line,) = [row for row in out.splitlines() if row.startswith(k8s.namespace)]
    assert line.split()[1:5] == ["claude", "old", "Degraded", "expired"]
    assert line.endswith("Forbidden: Key Vault refused the read")


def account(status: str, reason: str, message: str, now: datetime) -> dict[str, Any]:
    return {
        "type": "AccountUsable",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": format_rfc3339(now),
    }


async def test_status_shows_a_refused_account_and_fails_on_it(
    k8s: RealKube, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    help_text = "gemini: this Gemini Code Assist account needs a Google Cloud project."
    ready = {"phase": "Ready", "token": token_status("valid", 40, now)}
    refused = account("False", "ProjectRequired", help_text, now)
    await with_status(k8s, "gemini", "gemini", {**ready, "conditions": [refused]})
    usable = account("True", "NoRefusal", "The gateway reports no account refusal", now)
    await with_status(k8s, "claude", "claude", {**ready, "conditions": [usable]})
    kubeconfig = str(k8s.plane.kubeconfig)

    code, out, _ = await cli(["status", "-n", k8s.namespace, "--kubeconfig", kubeconfig], capsys)
    assert code == 1  # a valid token, but the vendor refuses the account
    header, *lines = out.splitlines()
    assert "ACCOUNT" in header.split()
    rows = {line.split()[1]: line for line in lines}
    assert "ProjectRequired" in rows["gemini"].split()
    assert rows["gemini"].endswith(f"ProjectRequired: {help_text}")
    assert "ok" in rows["claude"].split()

    code, out, _ = await cli(
        ["status", "-n", k8s.namespace, "-o", "json", "--kubeconfig", kubeconfig], capsys
    )
    assert code == 1
    items = {item["name"]: item for item in json.loads(out)["items"]}
    assert (items["gemini"]["account"], items["claude"]["account"]) == ("ProjectRequired", "ok")

    await k8s.custom.delete_namespaced_custom_object(
        GROUP, VERSION, k8s.namespace, PLURAL, "gemini"
    )
    code, _, _ = await cli(["status", "-n", k8s.namespace, "--kubeconfig", kubeconfig], capsys)
    assert code == 0  # an account the gateway accepts needs no attention


async def test_status_fails_on_a_degraded_provider_whose_token_is_still_valid(
    k8s: RealKube, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    failing = {
        "type": "Synced",
        "status": "False",
        "reason": "SecretConflict",
        "message": "Secret claude-credentials exists and is not ours",
        "lastTransitionTime": format_rfc3339(now),
    }
    valid = token_status("valid", 40, now)
    await with_status(
        k8s, "claude", "claude", {"phase": "Degraded", "token": valid, "conditions": [failing]}
    )
    await with_status(k8s, "gemini", "gemini", {"phase": "Ready", "token": valid})
    args = ["status", "-n", k8s.namespace, "--kubeconfig", str(k8s.plane.kubeconfig)]

    code, out, _ = await cli(args, capsys)
    assert code == 1  # the token is fine, but the Secret is not being kept in step
    rows = {line.split()[1]: line for line in out.splitlines()[1:]}
    assert rows["claude"].split()[2:4] == ["Degraded", "valid"]
    assert rows["claude"].endswith("SecretConflict: " + failing["message"])

    await k8s.custom.delete_namespaced_custom_object(
        GROUP, VERSION, k8s.namespace, PLURAL, "claude"
    )
    code, _, _ = await cli(args, capsys)
    assert code == 0  # the Ready one alone needs no attention


async def test_status_without_a_cluster_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await cli(["status", "--kubeconfig", str(tmp_path / "missing")], capsys)
    assert code == 3
    assert out == ""
    assert "cannot list LLMProviders" in err
