"""Schemathesis: generated requests against the real server must match the OpenAPI document.

Every default check runs except ``not_a_server_error``, replaced by a stricter rule: the only
5xx allowed are the documented provider/store codes (502/503/504), never a 500.
"""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, positive_data_acceptance

from tests.gateway.conftest import ThreadedGateway


@pytest.fixture(scope="module")
def api_schema(gateway: ThreadedGateway) -> Any:
    return schemathesis.openapi.from_url(f"{gateway.url}/openapi.json")


SEEN: list[tuple[str, int]] = []


def check_case(case: Any) -> None:
    response = case.call(timeout=10)
    SEEN.append((f"{case.method} {case.path}", response.status_code))
    excluded = [not_a_server_error]
    if response.status_code == 422 and "idempotency_key_reused" in response.text:
        # An answer about stored state, not the schema: the generator reuses one key.
        excluded.append(positive_data_acceptance)
    case.validate_response(response, excluded_checks=excluded)
    assert response.status_code not in (500, 501), response.text
    if response.status_code >= 400 and "json" in response.headers.get("content-type", ""):
        assert set(response.json()) == {"error"} or case.path == "/health/ready"


def test_api_matches_its_openapi(api_schema: Any) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.path for op in operations} >= {
        "/v1/chat",
        "/v1/chat/completions",
        "/v1/models",
        "/v1/providers/{name}/status",
    }
    for operation, mode in itertools.product(operations, GenerationMode):
        if mode is GenerationMode.NEGATIVE and operation.method.upper() != "POST":
            continue  # nothing to break in a request without a body
        run = given(case=operation.as_strategy(mode))(check_case)
        settings(
            max_examples=8,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )(run)()
    tried = {name for name, _ in SEEN}
    assert tried == {f"{op.method.upper()} {op.path}" for op in operations}
    assert any(code == 200 for name, code in SEEN if name == "POST /v1/chat")
    assert any(code == 422 for name, code in SEEN if name == "POST /v1/chat")


def test_openai_routes_declare_openai_errors_and_no_422(gateway: ThreadedGateway) -> None:
    """A body failing validation is 400 there (test_openai proves it): FastAPI's own 422
    entry must not be in the document either."""
    document = httpx.get(f"{gateway.url}/openapi.json").json()
    for path in ("/v1/chat/completions", "/v1/models"):
        for operation in document["paths"][path].values():
            answers = operation["responses"]
            assert "422" not in answers, path
            for status, answer in answers.items():
                if status != "200":
                    schema = answer["content"]["application/json"]["schema"]["$ref"]
                    assert schema.endswith("/OpenAIErrorBody"), (path, status)
