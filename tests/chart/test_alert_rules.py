"""The chart's alert rules evaluated by Prometheus's own engine: ``promtool test rules`` on the
rendered PrometheusRule with series shaped like the operator's metrics."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.chart.conftest import REPO, one, render

RULE_ON = ["monitoring.prometheusRule.enabled=true"]
INTERVAL = 60  # each provider's refreshInterval in these series: 3 intervals = 3 minutes


def promtool() -> str:
    """Unpacked from Debian's prometheus package by scripts/bootstrap.sh, else from PATH."""
    local = REPO / ".cache" / "prometheus" / "promtool"
    found = str(local) if local.exists() else shutil.which("promtool")
    assert found, "promtool missing: run scripts/bootstrap.sh"
    return found


def run_promtool(cwd: Path, *args: str) -> str:
    """Its stdout; a non-zero exit fails with what promtool said."""
    done = subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def rule(groups: list[dict[str, Any]], alert: str) -> dict[str, Any]:
    return next(r for g in groups for r in g["rules"] if r.get("alert") == alert)


def expand(template: str, labels: dict[str, str]) -> str:
    """The annotation as Prometheus fills it in (only ``{{ $labels.x }}`` is used there)."""
    return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], template)


def series(metric: str, values: str, **labels: str) -> dict[str, str]:
    text = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{metric}{{{text}}}", "values": values}


def provider(name: str, instance: str = "op-0") -> dict[str, str]:
    return {"namespace": "team", "name": name, "provider": "gemini", "instance": instance}


def sync_failing_cases() -> list[dict[str, Any]]:
    """Values every minute for 10 minutes; time 0 is the Unix epoch in promtool."""
    minutes = "x10"
    return [
        # The operator pods: op-0 leads, op-1 stands by (with what it exported as leader before).
        series("llmhub_operator_leader", f"1{minutes}", instance="op-0"),
        series("llmhub_operator_leader", f"0{minutes}", instance="op-1"),
        # first: its very first sync fails at t=1 s and every one after it; never a success.
        series(
            "llmhub_operator_sync_failing_since_timestamp_seconds",
            f"1{minutes}",
            **provider("first"),
        ),
        series(
            "llmhub_operator_refresh_interval_seconds", f"{INTERVAL}{minutes}", **provider("first")
        ),
        # later: synced once at t=1 s, failing since t=61 s.
        series(
            "llmhub_operator_last_sync_success_timestamp_seconds",
            f"1{minutes}",
            **provider("later"),
        ),
        series(
            "llmhub_operator_sync_failing_since_timestamp_seconds",
            f"61{minutes}",
            **provider("later"),
        ),
        series(
            "llmhub_operator_refresh_interval_seconds", f"{INTERVAL}{minutes}", **provider("later")
        ),
        # healthy: syncs every minute on the leader; the stand-by still shows the failure it saw
        # while it led (a stale series must not alert).
        series(
            "llmhub_operator_last_sync_success_timestamp_seconds",
            "0+60x10",
            **provider("healthy"),
        ),
        series(
            "llmhub_operator_sync_failing_since_timestamp_seconds",
            f"0{minutes}",
            **provider("healthy"),
        ),
        series(
            "llmhub_operator_refresh_interval_seconds",
            f"{INTERVAL}{minutes}",
            **provider("healthy"),
        ),
        series(
            "llmhub_operator_sync_failing_since_timestamp_seconds",
            f"1{minutes}",
            **provider("healthy", "op-1"),
        ),
        series(
            "llmhub_operator_refresh_interval_seconds",
            f"{INTERVAL}{minutes}",
            **provider("healthy", "op-1"),
        ),
    ]


def test_sync_failing_fires_for_a_first_sync_that_never_succeeds_and_after_a_success(
    tmp_path: Path,
) -> None:
    groups = one(render(sets=RULE_ON), "PrometheusRule")["spec"]["groups"]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    alert = rule(groups, "LLMHubSyncFailing")

    def firing(name: str) -> dict[str, Any]:
        labels = {"namespace": "team", "name": name, "provider": "gemini"}
        return {
            "exp_labels": {**labels, "severity": "warning"},
            "exp_annotations": {k: expand(v, labels) for k, v in alert["annotations"].items()},
        }

    cases = {
        # 3 intervals after the failing began (first, later) or after the last success (later),
        # then the rule's `for: 1m`.
        "2m": [],
        "5m": [firing("first"), firing("later")],
        "9m": [firing("first"), firing("later")],
    }
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": sync_failing_cases(),
                "alert_rule_test": [
                    {"eval_time": at, "alertname": "LLMHubSyncFailing", "exp_alerts": alerts}
                    for at, alerts in cases.items()
                ],
            }
        ],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    assert "SUCCESS" in run_promtool(tmp_path, "test", "rules", "tests.yaml")


def test_promtool_accepts_every_rule_the_chart_renders(tmp_path: Path) -> None:
    groups = one(render(sets=RULE_ON), "PrometheusRule")["spec"]["groups"]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    out = run_promtool(tmp_path, "check", "rules", "rules.yaml")
    assert f"{sum(len(g['rules']) for g in groups)} rules found" in out


def test_rollout_failing_fires_for_the_leaders_patch_failure_only(tmp_path: Path) -> None:
    """The Secret synced but the Deployment patch failed for 10 minutes on the leader: alert.
    A stand-by's stale 1 and a patch failure that heals within 10 minutes: no alert."""
    groups = one(render(sets=RULE_ON), "PrometheusRule")["spec"]["groups"]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    alert = rule(groups, "LLMHubGatewayRolloutFailing")
    minutes = "x20"
    inputs = [
        series("llmhub_operator_leader", f"1{minutes}", instance="op-0"),
        series("llmhub_operator_leader", f"0{minutes}", instance="op-1"),
        series("llmhub_operator_rollout_failing", f"1{minutes}", **provider("refused")),
        series("llmhub_operator_rollout_failing", "1x5 0x15", **provider("healed")),
        series("llmhub_operator_rollout_failing", f"1{minutes}", **provider("standby", "op-1")),
        series("llmhub_operator_rollout_failing", f"0{minutes}", **provider("standby")),
    ]
    labels = {"namespace": "team", "name": "refused", "provider": "gemini"}
    firing = {
        "exp_labels": {**labels, "severity": "warning"},
        "exp_annotations": {k: expand(v, labels) for k, v in alert["annotations"].items()},
    }
    cases = {"5m": [], "15m": [firing]}
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": inputs,
                "alert_rule_test": [
                    {"eval_time": at, "alertname": alert["alert"], "exp_alerts": expected}
                    for at, expected in cases.items()
                ],
            }
        ],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    assert "SUCCESS" in run_promtool(tmp_path, "test", "rules", "tests.yaml")
