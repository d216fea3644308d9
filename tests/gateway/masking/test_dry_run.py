"""POST /v1/masking/dry-run answers only the callers named in AUTH_ADMIN_CALLERS, shows the
configured recognizers even while masking is off, and says whether turns are masked."""

from __future__ import annotations

import httpx

from llmhub_gateway.core.config import Settings
from llmhub_gateway.main import create_app
from tests.gateway.fake_provider import echo_providers

TEXT = {"text": "mail ops@acme-corp.com about 10.0.0.9"}


async def _post(settings: Settings, body: dict[str, str]) -> httpx.Response:
    app = create_app(settings, providers=echo_providers())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        return await client.post("/v1/masking/dry-run", json=body)


async def test_other_callers_are_refused() -> None:
    answer = await _post(Settings(), TEXT)
    assert answer.status_code == 403
    assert "AUTH_ADMIN_CALLERS" in answer.json()["error"]["message"]


async def test_admin_sees_what_would_be_masked_while_off() -> None:
    settings = Settings(auth_admin_callers="anonymous", masking_recognizers="email")
    answer = await _post(settings, TEXT)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "masked": "mail [EMAIL_1] about 10.0.0.9",
        "findings": [{"recognizer": "email", "placeholder": "[EMAIL_1]", "start": 5, "end": 22}],
        "counts": {"email": 1},
        "enabled": False,
    }
    bad = await _post(settings, {"text": "nul \x00"})
    assert bad.status_code == 400
