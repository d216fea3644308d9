"""The images: bases pinned by digest (and a working way to bump them), Node LTS, own code only."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.chart.conftest import tool
from tests.ship.dockerfiles import (
    DIGEST_PIN,
    DOCKERFILES,
    REPO,
    instructions,
    stage_args,
    stages,
)

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
COMPONENTS = {"operator": "gateway", "gateway": "operator"}


def test_every_base_image_is_pinned_by_tag_and_digest() -> None:
    assert len(DOCKERFILES) == 4
    checked = 0
    for dockerfile in DOCKERFILES:
        names = {s.name for s in stages(dockerfile)}
        for stage in stages(dockerfile):
            if stage.base in names:
                continue  # an earlier stage of the same file
            if dockerfile.name == "Dockerfile.gateway-fakes":
                # kind only: built FROM the gateway image kind/e2e.sh has just built.
                assert stage.base == "llm-mcp-hub-gateway:e2e"
                continue
            assert DIGEST_PIN.match(stage.base), f"{dockerfile.name}: {stage.base} not pinned"
            checked += 1
    assert checked == 6  # operator 2 stages, gateway 3 (with Node), fake-azure 1


def test_gateway_runs_node_from_an_lts_line_of_22_or_newer() -> None:
    (gemini,) = [s for s in stages(REPO / "Dockerfile.gateway") if s.name == "gemini"]
    match = re.match(r"node:(\d+)\.\d+\.\d+-bookworm-slim@sha256:", gemini.base)
    assert match, gemini.base
    major = int(match.group(1))
    assert major >= 22
    assert major % 2 == 0, "odd Node majors never become LTS"
    # The Node binary is copied into a Debian bookworm Python image: same glibc line.
    final = stages(REPO / "Dockerfile.gateway")[-1]
    assert "-bookworm@sha256:" in final.base or "-slim-bookworm@sha256:" in final.base


def test_both_images_install_the_same_uv_as_bootstrap() -> None:
    wanted = re.search(r'^UV_VERSION="([^"]+)"', (REPO / "scripts/bootstrap.sh").read_text(), re.M)
    assert wanted
    for component in COMPONENTS:
        assert stage_args(REPO / f"Dockerfile.{component}")["UV_VERSION"] == wanted.group(1)


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_image_wheel_holds_its_own_package_and_the_shared_one_only(
    component: str, tmp_path: Path
) -> None:
    """Builds the project wheel (real hatchling) from exactly what the build stage copies."""
    (build,) = [s for s in stages(REPO / f"Dockerfile.{component}") if s.name == "build"]
    sources = build.copy_sources()
    assert COMPONENTS[component] not in sources, "the other component's code is copied"
    context = tmp_path / "context"
    context.mkdir()
    for source in sources:
        src = REPO / source
        if src.is_dir():
            shutil.copytree(src, context / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, context / source)
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_PROJECT")}
    done = subprocess.run(
        [tool("uv"), "build", "--wheel", "--out-dir", str(tmp_path / "dist"), str(context)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    top = {n.split("/")[0] for n in zipfile.ZipFile(wheel).namelist() if ".dist-info" not in n}
    assert top == {"llmhub_common", f"llmhub_{component}"}

    # The wheel still declares every console script; the image drops the other component's.
    scripts: dict[str, str] = PYPROJECT["project"]["scripts"]
    dangling = {name for name, target in scripts.items() if target.split(".")[0] not in top}
    # The admin CLI (llmhub_cli) is in neither image.
    assert dangling == {f"llmhub-{COMPONENTS[component]}", "llm-mcp-hub"}
    run = " ".join(rest for word, rest in build.instructions if word == "RUN")
    for name in dangling:
        assert re.search(rf"rm -f [^&]*/app/\.venv/bin/{re.escape(name)}(\s|$)", run), name


def _stand_in(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/usr/bin/env bash\nset -euo pipefail\n" + body)
    path.chmod(0o755)


def test_bump_base_images_repins_every_dockerfile_through_the_registry(tmp_path: Path) -> None:
    """scripts/bump-base-images.sh with a stand-in `docker buildx imagetools inspect`."""
    tree = tmp_path / "repo"
    (tree / "scripts").mkdir(parents=True)
    (tree / "kind").mkdir()
    shutil.copy2(REPO / "scripts/bump-base-images.sh", tree / "scripts")
    for dockerfile in DOCKERFILES:
        shutil.copy2(dockerfile, tree / dockerfile.relative_to(REPO))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "docker.log"
    # Answers like the real command: the index manifest as JSON, its digest derived from the ref.
    _stand_in(
        bin_dir,
        "docker",
        f'echo "$*" >>{log}\n'
        '[ "$1 $2 $3" = "buildx imagetools inspect" ] || exit 3\n'
        'ref="${!#}"\n'
        'digest="$(printf %s "$ref" | sha256sum | cut -c1-64)"\n'
        "index='application/vnd.oci.image.index.v1+json'\n"
        'printf \'{"mediaType":"%s","digest":"sha256:%s"}\\n\' "$index" "$digest"\n',
    )
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(
        [str(tree / "scripts/bump-base-images.sh"), "NODE_IMAGE=node:26.1.0-bookworm-slim"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr

    def pin(ref: str) -> str:
        return f"{ref}@sha256:{hashlib.sha256(ref.encode()).hexdigest()}"

    python_ref = stages(REPO / "Dockerfile.operator")[0].base.split("@")[0]
    for dockerfile in DOCKERFILES:
        bumped = stage_args(tree / dockerfile.relative_to(REPO))
        if "PYTHON_IMAGE" in bumped:
            assert bumped["PYTHON_IMAGE"] == pin(python_ref)
    assert stage_args(tree / "Dockerfile.gateway")["NODE_IMAGE"] == pin("node:26.1.0-bookworm-slim")
    # One registry query per distinct base, each by tag (no pull).
    queries = log.read_text().splitlines()
    assert sorted(q.split()[-1] for q in queries) == sorted(
        [python_ref, "node:26.1.0-bookworm-slim"]
    )
    assert (
        subprocess.run(
            [
                tool("hadolint"),
                *map(str, (tree / "Dockerfile.gateway", tree / "Dockerfile.operator")),
            ],
            capture_output=True,
            text=True,
            check=False,
        ).returncode
        == 0
    )


def test_bump_base_images_refuses_an_answer_without_a_digest(tmp_path: Path) -> None:
    tree = tmp_path / "repo"
    (tree / "scripts").mkdir(parents=True)
    (tree / "kind").mkdir()
    shutil.copy2(REPO / "scripts/bump-base-images.sh", tree / "scripts")
    shutil.copy2(REPO / "Dockerfile.operator", tree)
    before = (tree / "Dockerfile.operator").read_text()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _stand_in(bin_dir, "docker", 'echo \'{"digest": ""}\'\n')
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(
        [str(tree / "scripts/bump-base-images.sh")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert done.returncode != 0
    assert "no digest" in done.stderr
    assert (tree / "Dockerfile.operator").read_text() == before


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_build_without_buildkit_as_az_acr_build_does(dockerfile: Path) -> None:
    """docs/aks.md builds with `az acr build`, whose builder has no BuildKit-only syntax; the
    kind images too, so they build with the classic builder where no registry is reachable."""
    assert not dockerfile.read_text().startswith("# syntax=")
    for word, rest in instructions(dockerfile):
        for buildkit_only in ("--mount", "--chmod", "--link", "<<"):
            assert buildkit_only not in rest, f"{word} {rest}"
    # The ARGs a FROM uses are declared before the first FROM (the classic builder needs it).
    for stage in stages(dockerfile):
        assert "${" not in stage.base, stage.base
