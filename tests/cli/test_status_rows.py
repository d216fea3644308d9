"""What one row of ``llm-mcp-hub status`` says, from the status the operator writes."""

from __future__ import annotations

from typing import Any

from llmhub_cli.status import row


def _condition(type_: str, status: str, reason: str, message: str) -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def test_a_gateway_that_could_not_be_rolled_is_what_the_row_says() -> None:
    body = {
        "metadata": {"namespace": "team", "name": "claude"},
        "spec": {"provider": "claude"},
        "status": {
            "phase": "Degraded",
            "token": {"status": "valid", "daysRemaining": 40},
            "conditions": [
                _condition("Ready", "False", "PatchFailed", "patching Deployment gw failed"),
                _condition("Stalled", "True", "PatchFailed", "patching Deployment gw failed"),
                _condition("Synced", "True", "Synced", "Secret claude-credentials is up to date"),
                _condition("TokenValid", "True", "Valid", "valid for 40 days"),
            ],
        },
    }
    shown = row(body)
    assert (shown.phase, shown.message) == (
        "Degraded",
        "PatchFailed: patching Deployment gw failed",
    )
    body["status"]["phase"] = "Ready"
    body["status"]["conditions"][0] = _condition("Ready", "True", "Ready", "up to date")
    assert row(body).message == "valid for 40 days"
