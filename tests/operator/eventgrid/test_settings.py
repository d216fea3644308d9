"""Push rotation's settings and how an event's vault name is matched to an LLMProvider's URL."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from llmhub_operator.keyvault_events import EventGridSettings, _same_vault


def test_off_by_default_and_all_three_names_or_none(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not EventGridSettings().enabled
    monkeypatch.setenv("LLMHUB_EVENTGRID_ENDPOINT", "https://ns.westeurope-1.eventgrid.azure.net")
    with pytest.raises(ValidationError, match="_TOPIC and _SUBSCRIPTION together"):
        EventGridSettings()
    monkeypatch.setenv("LLMHUB_EVENTGRID_TOPIC", "keyvault")
    monkeypatch.setenv("LLMHUB_EVENTGRID_SUBSCRIPTION", "operator")
    assert EventGridSettings().enabled
    monkeypatch.setenv("LLMHUB_EVENTGRID_RELEASE_DELAY_SECONDS", "5")
    with pytest.raises(ValidationError, match="0, 10, 60, 600 or 3600"):
        EventGridSettings()
    monkeypatch.delenv("LLMHUB_EVENTGRID_RELEASE_DELAY_SECONDS")
    monkeypatch.setenv("LLMHUB_EVENTGRID_STALE_READ_ATTEMPTS", "4")
    monkeypatch.setenv("LLMHUB_EVENTGRID_STALE_READ_RETRY_SECONDS", "0.25")
    versions = EventGridSettings().event_versions()
    assert (versions.attempts, versions.retry_s) == (4, 0.25)
    monkeypatch.setenv("LLMHUB_EVENTGRID_STALE_READ_ATTEMPTS", "0")
    with pytest.raises(ValidationError, match="stale_read_attempts"):
        EventGridSettings()


@pytest.mark.parametrize(
    ("url", "name", "same"),
    [
        ("https://team-kv.vault.azure.net", "team-kv", True),
        ("https://Team-KV.vault.azure.net/", "team-kv", True),
        ("https://team-kv.vault.azure.net", "team", False),
        ("https://other-kv.vault.azure.net", "team-kv", False),
        ("https://127.0.0.1:8443", "127.0.0.1:8443", True),
        ("https://127.0.0.1:8443", "127.0.0.1:9443", False),
        ("https://127.0.0.1:8443", "127", False),
    ],
)
def test_vault_name_matches_the_first_label_or_a_stand_ins_host_port(
    url: str, name: str, same: bool
) -> None:
    assert _same_vault(url, name) is same
