"""Gemini accounts since 2026-06-18: the project reaches the CLI, its two refusals are mapped."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from llmhub_common.contract import GEMINI_PROJECT_KEY
from llmhub_gateway.providers.base import (
    ProviderAccountUnsupported,
    ProviderAuthError,
    ProviderProjectRequired,
)
from llmhub_gateway.providers.gemini import GeminiProvider
from llmhub_gateway.providers.limits import CappedProvider
from tests.gateway.providers.conftest import (
    FAKE_GEMINI,
    FAKE_GEMINI_CREDS,
    chat,
    collect,
    our_zombies,
    set_mode,
)


@pytest.fixture(autouse=True)
def _no_project_in_our_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def mount(tmp_path: Path) -> Path:
    """A Secret-volume-like directory the test can still change (kubelet's update)."""
    path = tmp_path / "secret"
    path.mkdir()
    (path / "oauth_creds.json").write_text(json.dumps(FAKE_GEMINI_CREDS))
    return path


_made: list[GeminiProvider] = []


@pytest.fixture(params=["acp", "pty"], autouse=True)
async def runtime(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """Every test runs on both runtimes; the providers it made are closed after it."""
    yield str(request.param)
    while _made:
        await _made.pop().aclose()


def provider(
    mount: Path, tmp_path: Path, runtime: str, project: str | None = None
) -> GeminiProvider:
    made = GeminiProvider(
        auth_path=mount / "oauth_creds.json",
        default_model="gemini-2.5-pro",
        cli_path=str(FAKE_GEMINI),
        cli_home=tmp_path / "home",
        project=project,
        runtime=runtime,
        pass_env=("FAKE_CLI_*",),
    )
    _made.append(made)
    return made


async def test_a_personal_account_is_account_unsupported_and_says_what_to_do(
    mount: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runtime: str
) -> None:
    gemini = provider(mount, tmp_path, runtime)
    limited = CappedProvider(gemini, max_concurrency=1, timeout_s=30)
    set_mode(monkeypatch, "unsupported")
    with pytest.raises(ProviderAccountUnsupported) as caught:
        await collect(limited, chat("hi"))
    assert caught.value.status_code == 502
    assert caught.value.error_type == "provider_account_unsupported"
    assert "Code Assist Standard or Enterprise" in str(caught.value)
    assert "IneligibleTierError" not in str(caught.value)  # the CLI's text stays in the log
    assert limited.account_problem() == ("provider_account_unsupported", str(caught.value))
    set_mode(monkeypatch, "ok")
    await collect(limited, chat("hi"))
    assert limited.account_problem() is None  # a call that works clears it
    assert our_zombies() == []


async def test_a_code_assist_account_without_a_project_is_project_required(
    mount: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runtime: str
) -> None:
    set_mode(monkeypatch, "project")
    with pytest.raises(ProviderProjectRequired) as caught:
        await collect(provider(mount, tmp_path, runtime), chat("hi"))
    assert caught.value.error_type == "provider_project_required"
    assert "spec.gemini.projectId" in str(caught.value)


async def test_the_gateway_env_project_reaches_the_cli(
    mount: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runtime: str
) -> None:
    set_mode(monkeypatch, "project")
    (mount / GEMINI_PROJECT_KEY).write_text("from-the-secret")
    text = "".join(await collect(provider(mount, tmp_path, runtime, "team-proj-42"), chat("hi")))
    assert "project=team-proj-42]" in text  # GOOGLE_CLOUD_PROJECT on the gateway wins


async def test_the_project_key_of_the_secret_is_read_on_every_call(
    mount: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runtime: str
) -> None:
    set_mode(monkeypatch, "project")
    gemini = provider(mount, tmp_path, runtime)
    (mount / GEMINI_PROJECT_KEY).write_text("first-project\n")
    assert "project=first-project]" in "".join(await collect(gemini, chat("hi")))
    (mount / GEMINI_PROJECT_KEY).write_text("second-project")  # kubelet updated the volume
    assert "project=second-project]" in "".join(await collect(gemini, chat("hi")))


async def test_a_revoked_token_stays_a_plain_auth_error(
    mount: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runtime: str
) -> None:
    gemini = provider(mount, tmp_path, runtime)
    set_mode(monkeypatch, "auth")
    with pytest.raises(ProviderAuthError) as caught:
        await collect(gemini, chat("hi"))
    assert type(caught.value) is ProviderAuthError
    assert gemini.account_problem() is None
