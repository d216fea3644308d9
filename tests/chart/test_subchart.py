"""The chart as a dependency of a parent chart whose `global` has keys this chart does not know."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from tests.chart.conftest import CHART, helm, one

PARENT_VALUES = {
    "global": {"podLabels": {"team": "shop"}, "parentOnly": {"tier": "gold"}, "env": "prod"},
    "llm-mcp-hub": {"operator": {"replicaCount": 2}, "crds": {"install": False}},
}


def _helm(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home), "HELM_CACHE_HOME": str(home / "cache")}
    env |= {"HELM_CONFIG_HOME": str(home / "config"), "HELM_DATA_HOME": str(home / "data")}
    return subprocess.run(
        [helm(), *args], capture_output=True, text=True, timeout=60, check=False, env=env
    )


def test_parent_chart_renders_this_chart_with_unknown_global_keys(tmp_path: Path) -> None:
    parent = tmp_path / "parent"
    (parent / "templates").mkdir(parents=True)
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
    chart_yaml = {
        "apiVersion": "v2",
        "name": "parent",
        "version": "1.0.0",
        "dependencies": [
            {"name": "llm-mcp-hub", "version": version, "repository": f"file://{CHART}"}
        ],
    }
    (parent / "Chart.yaml").write_text(yaml.safe_dump(chart_yaml))
    (parent / "values.yaml").write_text(yaml.safe_dump(PARENT_VALUES))
    (parent / "templates" / "app.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: parent-app\n"
        "data:\n  tier: {{ .Values.global.parentOnly.tier }}\n"
    )
    home = tmp_path / "home"
    built = _helm(home, "dependency", "build", str(parent))
    assert built.returncode == 0, built.stderr
    assert (parent / "charts" / f"llm-mcp-hub-{version}.tgz").exists()

    done = _helm(home, "template", "shop", str(parent), "-n", "shop")
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert one(docs, "ConfigMap", "parent-app")["data"] == {"tier": "gold"}
    operator = one(docs, "Deployment", "-operator")
    assert operator["spec"]["replicas"] == 2, "the parent's values for the subchart apply"
    labels = operator["spec"]["template"]["metadata"]["labels"]
    assert labels["team"] == "shop", "the shared global the chart knows still works"
    assert not [d for d in docs if d["kind"] == "CustomResourceDefinition"]

    bad = _helm(home, "template", "shop", str(parent), "--set", "global.imagePullSecrets=oops")
    assert bad.returncode != 0
    assert "global.imagePullSecrets" in bad.stderr, "known global keys are still checked"
