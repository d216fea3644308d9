"""Renders the chart with `helm template` (cached per value set) for the chart tests."""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "llm-mcp-hub"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
NAMESPACE = "hub"
RELEASE = "hub"

Manifest = dict[str, Any]


def tool(name: str) -> str:
    """A command from the project's venv (helm, hadolint, yamllint, ...), else from PATH."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    assert found, f"{name} missing: run scripts/bootstrap.sh, then the tests with `uv run`"
    return found


def helm() -> str:
    """The helm binary from the helm-binary dev dependency."""
    return tool("helm")


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm(), *args], capture_output=True, text=True, timeout=60, check=False)


@functools.cache
def _render(values_files: tuple[str, ...], sets: tuple[str, ...]) -> str:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for f in values_files:
        args += ["-f", f]
    for s in sets:
        args += ["--set", s]
    done = run_helm(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def render_text(values_files: Iterable[Path] = (), sets: Iterable[str] = ()) -> str:
    return _render(tuple(str(p) for p in values_files), tuple(sets))


def render(values_files: Iterable[Path] = (), sets: Iterable[str] = ()) -> list[Manifest]:
    """All rendered objects, the CRD template included."""
    text = render_text(values_files, sets)
    return [d for d in yaml.safe_load_all(text) if d]


def find(docs: list[Manifest], kind: str, name_suffix: str = "") -> list[Manifest]:
    return [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix)]


def one(docs: list[Manifest], kind: str, name_suffix: str = "") -> Manifest:
    found = find(docs, kind, name_suffix)
    assert len(found) == 1, (
        f"expected one {kind} *{name_suffix}, got {[d['metadata']['name'] for d in found]}"
    )
    return found[0]


def container(deployment: Manifest) -> Manifest:
    containers: list[Manifest] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(c: Manifest) -> dict[str, Manifest]:
    return {e["name"]: e for e in c.get("env", [])}


def ci_file(name: str) -> Path:
    return CHART / "ci" / f"{name}-values.yaml"


@pytest.fixture(scope="session")
def default_docs() -> list[Manifest]:
    return render()


@pytest.fixture(scope="session")
def renderer() -> Callable[..., list[Manifest]]:
    return render


def render_notes(tmp_path: Path, *sets: str) -> str:
    """helm template leaves NOTES.txt out, so render it through a throw-away ConfigMap."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "notes.txt")
    (chart / "templates" / "zz-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n"
        'data:\n  notes: {{ tpl (.Files.Get "notes.txt") . | quote }}\n'
    )
    args = ["template", "hub", str(chart), "-n", "hub", "--show-only", "templates/zz-notes.yaml"]
    for s in sets:
        args += ["--set", s]
    done = run_helm(*args)
    assert done.returncode == 0, done.stderr
    notes: str = yaml.safe_load(done.stdout)["data"]["notes"]
    return notes
