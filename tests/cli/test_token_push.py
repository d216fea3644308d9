"""``llm-mcp-hub token push`` against the fake Key Vault, through the real Azure SDK."""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from llmhub_cli.app import main
from tests.fakes.fake_azure import FakeAzure

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).parent / "llm-mcp-hub"


def claude_token() -> str:
    return "sk-ant-oat01-" + secrets.token_urlsafe(60)


def gemini_creds() -> dict[str, object]:
    return {
        "access_token": "ya29." + secrets.token_urlsafe(40),
        "refresh_token": "1//0" + secrets.token_urlsafe(40),
        "scope": "https://www.googleapis.com/auth/cloud-platform openid",
        "token_type": "Bearer",
        "expiry_date": int(time.time() * 1000) + 3_600_000,
    }


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def assert_never_shown(value: str, *texts: str) -> None:
    for text in texts:
        assert value not in text


def test_push_claude_writes_a_version_with_expiry_and_tags(
    azure_env: dict[str, str],
    fake_azure: FakeAzure,
    vault_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    logs: pytest.LogCaptureFixture,
) -> None:
    token = claude_token()
    (tmp_path / "token").write_text(token + "\n")
    before = time.time()
    code, out, err = run(
        [
            "token",
            "push",
            "claude",
            "--vault-url",
            vault_url,
            "--secret-name",
            "cli-claude",
            "--file",
            str(tmp_path / "token"),
            "--expires-in",
            "30d",
            "--pushed-by",
            "ops@test",
        ],
        capsys,
    )
    assert code == 0, err
    (version,) = fake_azure.versions("cli-claude")
    assert version.value == token  # stripped of the newline
    assert version.expires is not None
    assert abs(version.expires - (before + 30 * 86400)) < 60
    assert version.tags["kind"] == "claude-oauth-token"
    assert version.tags["pushed-by"] == "ops@test"
    issued = datetime.fromisoformat(version.tags["issued-at"].replace("Z", "+00:00"))
    assert abs(issued.timestamp() - before) < 60
    assert issued.tzinfo == UTC
    assert version.content_type == "text/plain"
    assert version.version in out
    assert "cli-claude" in out
    assert [r.method for r in fake_azure.requests("cli-claude") if r.authorized] == ["PUT"]
    assert_never_shown(token, out, err, logs.text)


def test_push_gemini_from_file_defaults_to_a_year(
    azure_env: dict[str, str],
    fake_azure: FakeAzure,
    vault_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    logs: pytest.LogCaptureFixture,
) -> None:
    creds = gemini_creds()
    path = tmp_path / "oauth_creds.json"
    path.write_text(json.dumps(creds))
    code, out, err = run(
        [
            "token",
            "push",
            "gemini",
            "--vault-url",
            vault_url,
            "--secret-name",
            "cli-gemini",
            "--file",
            str(path),
        ],
        capsys,
    )
    assert code == 0, err
    (version,) = fake_azure.versions("cli-gemini")
    assert json.loads(version.value) == creds
    assert version.expires is not None
    assert abs(version.expires - (time.time() + 365 * 86400)) < 60
    assert version.tags["kind"] == "gemini-oauth-creds"
    assert version.content_type == "application/json"
    for part in (str(creds["access_token"]), str(creds["refresh_token"])):
        assert_never_shown(part, out, err, logs.text)


def test_console_script_reads_the_token_from_stdin(
    azure_env: dict[str, str], fake_azure: FakeAzure, vault_url: str
) -> None:
    token = claude_token()
    done = subprocess.run(
        [
            str(SCRIPT),
            "token",
            "push",
            "claude",
            "--vault-url",
            vault_url,
            "--secret-name",
            "cli-stdin",
        ],
        input=token + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **azure_env},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [v.value for v in fake_azure.versions("cli-stdin")] == [token]
    assert_never_shown(token, done.stdout, done.stderr)


def test_no_access_is_a_clear_403_and_nothing_is_written(
    azure_env: dict[str, str],
    fake_azure: FakeAzure,
    vault_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    logs: pytest.LogCaptureFixture,
) -> None:
    token = claude_token()
    (tmp_path / "token").write_text(token)
    fake_azure.fail("cli-denied", 403)
    code, out, err = run(
        [
            "token",
            "push",
            "claude",
            "--vault-url",
            vault_url,
            "--secret-name",
            "cli-denied",
            "--file",
            str(tmp_path / "token"),
        ],
        capsys,
    )
    assert code == 1
    assert "access denied" in err
    assert "Key Vault Secrets Officer" in err
    assert "Traceback" not in err
    assert fake_azure.versions("cli-denied") == []
    assert_never_shown(token, out, err, logs.text)


def test_a_vault_that_does_not_exist_is_named_in_the_error(
    azure_env: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    logs: pytest.LogCaptureFixture,
) -> None:
    token = claude_token()
    (tmp_path / "token").write_text(token)
    wrong = "https://no-such-vault-llmhub.invalid"
    code, out, err = run(
        ["token", "push", "claude", "--vault-url", wrong, "--file", str(tmp_path / "token")],
        capsys,
    )
    assert code == 1
    assert f"cannot reach Key Vault {wrong}" in err
    assert "check the vault name" in err
    assert_never_shown(token, out, err, logs.text)


@pytest.mark.parametrize(
    ("provider", "content", "expected"),
    [
        ("claude", "", "empty input"),
        ("claude", "sk-ant-api03-" + "x" * 80, "API key, not an OAuth token"),
        ("claude", "hello world this is not a token", "does not look like"),
        ("claude", '{"claudeAiOauth": {}}', "no claudeAiOauth.accessToken"),
        ("gemini", "not json", "is not JSON"),
        ("gemini", '{"access_token": "ya29.abc"}', "has no refresh_token"),
        ("gemini", '{"type": "service_account", "private_key": "k"}', "service-account key"),
    ],
)
def test_bad_input_is_refused_before_any_request(
    provider: str,
    content: str,
    expected: str,
    azure_env: dict[str, str],
    fake_azure: FakeAzure,
    vault_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "input"
    path.write_text(content)
    code, out, err = run(
        ["token", "push", provider, "--vault-url", vault_url, "--file", str(path)], capsys
    )
    assert code == 2
    assert expected in err
    assert fake_azure.requests() == []
    if len(content) > 8:
        assert content not in out + err


def test_the_claude_login_file_keeps_its_own_shorter_expiry(
    azure_env: dict[str, str],
    fake_azure: FakeAzure,
    vault_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = claude_token()
    expires_ms = int((time.time() + 8 * 3600) * 1000)
    path = tmp_path / ".credentials.json"
    path.write_text(json.dumps({"claudeAiOauth": {"accessToken": token, "expiresAt": expires_ms}}))
    code, out, err = run(
        [
            "token",
            "push",
            "claude",
            "--vault-url",
            vault_url,
            "--secret-name",
            "cli-login",
            "--file",
            str(path),
        ],
        capsys,
    )
    assert code == 0, err
    (version,) = fake_azure.versions("cli-login")
    assert version.value == token
    assert version.expires == expires_ms // 1000
    assert "claude setup-token" in err  # the note says how to get a year-long token
    assert_never_shown(token, out, err)


def test_a_plain_http_vault_url_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "token"
    path.write_text(claude_token())
    code, _, err = run(
        ["token", "push", "claude", "--vault-url", "http://kv.example", "--file", str(path)],
        capsys,
    )
    assert code == 1
    assert "must be https://" in err


def test_no_azure_sign_in_says_to_log_in(
    azure_env: dict[str, str],
    fake_azure: FakeAzure,
    vault_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    logs: pytest.LogCaptureFixture,
) -> None:
    token = claude_token()
    (tmp_path / "token").write_text(token)
    fake_azure.fail_token(401, times=5)  # Entra refuses this identity
    code, out, err = run(
        [
            "token",
            "push",
            "claude",
            "--vault-url",
            vault_url,
            "--secret-name",
            "cli-nologin",
            "--file",
            str(tmp_path / "token"),
        ],
        capsys,
    )
    fake_azure.reset()  # leave no refusal behind for the next test
    assert code == 1
    assert "could not get an Azure token" in err
    assert "az login" in err
    assert fake_azure.versions("cli-nologin") == []
    assert_never_shown(token, out, err, logs.text)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], ["token", "status"]),
        (["token"], ["push"]),
        (["token", "push", "claude"], ["claude setup-token", "--vault-url", "never printed"]),
        (["token", "push", "gemini"], ["oauth_creds.json", "Code Assist", "--file"]),
        (["status"], ["-A", "warning or expired", "-o"]),
    ],
)
def test_help_explains_each_command(
    args: list[str], expected: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main([*args, "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for word in expected:
        assert word in text
