"""Static checks: shellcheck, yamllint, hadolint; Dockerfiles in step with pyproject and chart."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.chart.conftest import CHART, REPO, ci_file, container, env_of, one, render, tool
from tests.ship.dockerfiles import instructions

SHELL_SCRIPTS = sorted([*REPO.glob("kind/*.sh"), *REPO.glob("scripts/*.sh")])
DOCKERFILES = sorted([*REPO.glob("Dockerfile.*"), *REPO.glob("kind/Dockerfile.*")])
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, cwd=REPO)


def test_shell_scripts_pass_shellcheck() -> None:
    assert REPO / "kind" / "e2e.sh" in SHELL_SCRIPTS
    done = _run(tool("shellcheck"), "--severity=style", *map(str, SHELL_SCRIPTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_shellcheck_really_flags_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\nrm -rf $1/*\n")
    done = _run(tool("shellcheck"), str(bad))
    assert done.returncode != 0
    assert "SC2086" in done.stdout


def test_chart_values_kind_configs_and_workflows_pass_yamllint() -> None:
    targets = [
        CHART / "values.yaml",
        CHART / "Chart.yaml",
        CHART / "ci",
        REPO / "kind" / "cluster.yaml",
        REPO / ".yamllint",
        REPO / ".github" / "workflows",
    ]
    done = _run(tool("yamllint"), "--strict", "-c", str(REPO / ".yamllint"), *map(str, targets))
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfiles_pass_hadolint() -> None:
    assert len(DOCKERFILES) == 4
    done = _run(tool("hadolint"), "--failure-threshold", "info", *map(str, DOCKERFILES))
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_really_flags_problems(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    done = _run(tool("hadolint"), str(bad))
    assert done.returncode != 0
    assert "DL3007" in done.stdout


def _final_stage(path: Path) -> list[tuple[str, str]]:
    ins = instructions(path)
    last_from = max(i for i, (word, _) in enumerate(ins) if word == "FROM")
    return ins[last_from:]


def _json_list(path: Path, word: str) -> list[str]:
    args = [rest for w, rest in _final_stage(path) if w == word]
    assert len(args) == 1, f"{path.name}: one {word} in the final stage"
    value: list[str] = yaml.safe_load(args[0])
    return value


def _args(path: Path) -> dict[str, str]:
    found = {}
    for word, rest in instructions(path):
        if word == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            found[name] = value
    return found


def _bootstrap_var(name: str) -> str:
    match = re.search(rf'^{name}="([^"]+)"', (REPO / "scripts" / "bootstrap.sh").read_text(), re.M)
    assert match, f"{name} not in scripts/bootstrap.sh"
    return match.group(1)


@pytest.mark.parametrize(
    ("component", "ports"), [("operator", {9090, 8080}), ("gateway", {8000, 9090})]
)
def test_dockerfile_runs_a_console_script_under_tini_on_the_chart_ports(
    component: str, ports: set[int]
) -> None:
    dockerfile = REPO / f"Dockerfile.{component}"
    assert _json_list(dockerfile, "ENTRYPOINT") == ["/usr/bin/tini", "--"]
    cmd = _json_list(dockerfile, "CMD")
    scripts: dict[str, str] = PYPROJECT["project"]["scripts"]
    assert cmd[0] == f"llmhub-{component}"
    assert cmd[0] in scripts
    module = scripts[cmd[0]].split(":")[0].split(".")[0]
    packages = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert any(p.endswith(f"/{module}") for p in packages), (module, packages)
    exposed = {
        int(p) for w, rest in _final_stage(dockerfile) if w == "EXPOSE" for p in rest.split()
    }
    assert exposed == ports
    c = container(one(render(), "Deployment", f"-{component}"))
    assert {p["containerPort"] for p in c["ports"]} == ports
    assert c["args"][0] == cmd[0], "the chart runs the same console script"
    if component == "gateway":
        assert (
            cmd[1:]
            == c["args"][1:]
            == [
                *("--host", "0.0.0.0", "--port", "8000"),
                *("--admin-port", "9090"),
            ]
        )


@pytest.mark.parametrize("component", ["operator", "gateway"])
def test_dockerfile_installs_from_the_lock_with_the_right_extra(component: str) -> None:
    text = re.sub(r"\\\n", " ", (REPO / f"Dockerfile.{component}").read_text())
    syncs = re.findall(r"uv sync ([^\n]*)", text)
    assert len(syncs) == 2
    for sync in syncs:
        assert "--frozen" in sync
        assert "--no-dev" in sync
        assert f"--extra {component}" in sync
        extras = re.findall(r"--extra (\S+)", sync)
        assert set(extras) <= set(PYPROJECT["project"]["optional-dependencies"])
    copied = {
        rest.split()[0].rstrip("/")
        for w, rest in instructions(REPO / f"Dockerfile.{component}")
        if w == "COPY" and not rest.startswith("--")
    }
    top_dirs = {
        p.split("/")[0] for p in PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    }
    # Its own package and the shared one; hatchling leaves the packages it does not find out.
    assert copied & top_dirs == {"common", component}


@pytest.mark.parametrize("component", ["operator", "gateway"])
def test_image_user_matches_the_chart_security_context(component: str) -> None:
    user = [rest for w, rest in _final_stage(REPO / f"Dockerfile.{component}") if w == "USER"]
    assert user == ["10001:10001"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values[component]["podSecurityContext"]["runAsUser"] == 10001
    assert _args(REPO / f"Dockerfile.{component}")["PYTHON_IMAGE"].startswith("python:3.11.")


def test_gemini_cli_and_uv_versions_match_bootstrap() -> None:
    args = _args(REPO / "Dockerfile.gateway")
    assert args["GEMINI_CLI_VERSION"] == _bootstrap_var("GEMINI_CLI_VERSION")
    assert args["UV_VERSION"] == _bootstrap_var("UV_VERSION")
    node_major = int(args["NODE_IMAGE"].removeprefix("node:").split(".")[0])
    assert node_major >= 22, "Node 20 is end of life"
    assert node_major % 2 == 0, "an LTS line (even major)"
    assert "gemini-cli" not in (REPO / "Dockerfile.operator").read_text(), (
        "Node only in the gateway"
    )


def test_gateway_image_puts_gemini_on_path_and_homes_where_the_chart_mounts() -> None:
    text = (REPO / "Dockerfile.gateway").read_text()
    assert "/usr/local/bin/gemini" in text
    env = env_of(container(one(render(), "Deployment", "-gateway")))
    assert env["GEMINI_CLI_PATH"]["value"] == "gemini"
    assert f"HOME={env['HOME']['value']}" in text
    assert f"GEMINI_CLI_HOME={env['GEMINI_CLI_HOME']['value']}" in text


def test_kind_fake_cli_image_provides_the_paths_the_kind_values_name() -> None:
    text = (REPO / "kind" / "Dockerfile.gateway-fakes").read_text()
    env = env_of(container(one(render([ci_file("kind")]), "Deployment", "-gateway")))
    for var, script in (
        ("CLAUDE_CLI_PATH", "fake_claude.py"),
        ("GEMINI_CLI_PATH", "fake_gemini.py"),
    ):
        assert env[var]["value"] == f"/opt/fakes/{script}"
        assert f"tests/fakes/{script}" in text
    # executable for the non-root user, set without BuildKit's COPY --chmod
    assert "RUN chmod 0555 /opt/fakes/fake_claude.py /opt/fakes/fake_gemini.py" in text


def test_dockerignore_keeps_what_the_builds_copy() -> None:
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    for kept in ("!README.md", "!tests/fakes/"):
        assert kept in ignore
    for dropped in ("**/.venv", "**/.git", "charts/"):
        assert dropped in ignore
