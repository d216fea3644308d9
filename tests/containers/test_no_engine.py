"""Without a Docker engine the tier says so: a failure under CI=true (never a skip), a skip
naming how to install one elsewhere. Run as a pytest of its own with no dockerd on PATH."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.containers.engine import ROOT

ONE_TEST = "tests/containers/test_gateway_image.py::test_holds_the_pinned_gemini_cli"


def run_without_dockerd(tmp_path: Path, ci: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": "/usr/bin:/bin",  # dockerd is /usr/sbin/dockerd
        "LLMHUB_DOCKER_HOME": str(tmp_path / "docker"),  # not this session's engine
        "CI": ci,
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", ONE_TEST],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("ci", ["true", ""])
def test_no_engine_fails_under_ci_and_skips_elsewhere(tmp_path: Path, ci: str) -> None:
    done = run_without_dockerd(tmp_path, ci)
    if ci:
        assert done.returncode == 1, done.stdout[-2000:]
        assert "the container tier needs a Docker engine" in done.stdout
        assert "skipped" not in done.stdout
    else:
        assert done.returncode == 0, done.stdout[-2000:]
        assert "1 skipped" in done.stdout
    assert "apt-get install docker.io debootstrap" in done.stdout
