"""The gateway image as the chart runs it: uid 10001, read-only root, no capabilities, the
chart's emptyDirs; the pinned CLIs inside; readiness; a chat turn end to end on 127.0.0.1."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.containers.engine import Engine
from tests.containers.images import Images, tag
from tests.containers.pods import mount_paths, run_flags
from tests.containers.running import Running, run
from tests.ship.dockerfiles import REPO, stage_args

TOKEN = "sk-ant-oat01-" + "ContractFakeTokenNeverReal_" * 3
CREDS = {"access_token": "ya29.a0ContractFake", "refresh_token": "1//0gContractFake"}
BUNDLED_CLAUDE = "/app/.venv/lib/python3.11/site-packages/claude_agent_sdk/_bundled/claude"


@pytest.fixture(scope="module")
def gemini_auth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the operator's Secret holds, readable by uid 10001 (the Secret's 0440 + fsGroup)."""
    auth = tmp_path_factory.mktemp("gemini-auth")
    auth.chmod(0o755)
    (auth / "oauth_creds.json").write_text(json.dumps(CREDS))
    (auth / "oauth_creds.json").chmod(0o444)
    return auth


def gateway_flags(gemini_auth: Path, *extra: str, tmp_options: str = "exec") -> list[str]:
    auth_mount = mount_paths("gateway")["gemini-auth"]
    return [
        *run_flags("gateway", tmp_options=tmp_options),
        f"--volume={gemini_auth}:{auth_mount}:ro",
        "--publish=127.0.0.1::8000",
        "--env=AUTH_MODES=none",
        f"--env=CLAUDE_CODE_OAUTH_TOKEN={TOKEN}",
        *extra,
    ]


def in_image(engine: Engine, *cmd: str) -> str:
    done = engine.docker("run", "--rm", *run_flags("gateway"), tag("gateway"), *cmd, check=False)
    output = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode == 0, output
    return output


def test_runs_as_its_user_on_a_read_only_root_with_no_capabilities(
    images: Images, engine: Engine
) -> None:
    out = in_image(
        engine,
        "sh",
        "-c",
        "id -u; grep CapEff /proc/self/status; touch /x 2>/dev/null && echo rw || echo ro",
    )
    uid, caps, ro = out.strip().splitlines()[-3:]
    assert uid == "10001"
    assert caps.split() == ["CapEff:", "0000000000000000"]
    assert ro == "ro"


def test_holds_the_pinned_claude_cli_bundled_by_the_sdk(images: Images, engine: Engine) -> None:
    version = in_image(engine, BUNDLED_CLAUDE, "--version")
    assert re.match(r"\d+\.\d+\.\d+ \(Claude Code\)", version.strip()), version


def test_holds_the_pinned_gemini_cli(images: Images, engine: Engine) -> None:
    pinned = stage_args(REPO / "Dockerfile.gateway")["GEMINI_CLI_VERSION"]
    # HOME's emptyDirs are the chart's, so the CLI can write its state as in a pod.
    assert in_image(engine, "gemini", "--version").strip().splitlines()[-1] == pinned


@pytest.fixture(scope="module")
def real_clis(images: Images, engine: Engine, gemini_auth: Path) -> Iterator[Running]:
    with run(engine, tag("gateway"), *gateway_flags(gemini_auth)) as gateway:
        yield gateway


def test_readiness_names_both_real_clis_ready(real_clis: Running) -> None:
    answer = real_clis.wait_http(
        f"{real_clis.url(8000)}/health/ready", lambda r: r.status_code == 200
    )
    assert answer.json() == {"status": "ready", "providers": ["claude", "gemini"], "reasons": []}


def test_a_chat_turn_through_a_fake_cli_mounted_into_the_container(
    images: Images, engine: Engine, gemini_auth: Path
) -> None:
    fakes = [
        f"--volume={REPO / 'tests/fakes'}:/opt/fakes:ro",
        "--env=CLAUDE_CLI_PATH=/opt/fakes/fake_claude.py",
        "--env=GEMINI_CLI_PATH=/opt/fakes/fake_gemini.py",
    ]
    with run(engine, tag("gateway"), *gateway_flags(gemini_auth, *fakes)) as gateway:
        url = gateway.url(8000)
        gateway.wait_http(f"{url}/health/ready", lambda r: r.status_code == 200)
        for provider in ("claude", "gemini"):
            answer = httpx.post(
                f"{url}/v1/chat",
                json={"provider": provider, "prompt": f"ping from the {provider} contract"},
                timeout=60,
            )
            assert answer.status_code == 200, answer.text + gateway.logs()
            body = answer.json()
            assert body["text"].startswith(f"[fake-{provider}"), body
            assert f"ping from the {provider} contract" in body["text"]
        assert TOKEN not in gateway.logs()


def test_readiness_fails_naming_why_when_tmp_is_noexec(
    images: Images, engine: Engine, gemini_auth: Path
) -> None:
    """The warm Claude CLI's launcher lives in /tmp: on a noexec /tmp no CLI can start."""
    flags = gateway_flags(gemini_auth, tmp_options="noexec")
    with run(engine, tag("gateway"), *flags, "--env=GEMINI_AUTH_PATH=/nonexistent") as gateway:
        answer = gateway.wait_http(
            f"{gateway.url(8000)}/health/ready", lambda r: r.status_code == 503, timeout=60
        )
        reasons = " ".join(answer.json()["reasons"])
        assert "claude: the CLI cannot start" in reasons, answer.json()
        assert "Permission denied" in reasons, answer.json()
