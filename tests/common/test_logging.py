import json
import logging

import pytest

from llmhub_common import logging as hub_logging
from tests.leaks import assert_no_leak


def test_known_secret_values_and_token_shapes_are_redacted(capsys):
    hub_logging.configure("INFO")
    hub_logging.secrets.add("my-very-secret-value-123")
    log = logging.getLogger("test.redact")
    log.info("value=%s google=%s", "my-very-secret-value-123", "ya29.a0AfH6SMCabcdefgh")
    try:
        raise RuntimeError("boom sk-ant-oat01-abcdefghijkl")
    except RuntimeError:
        log.exception("failed")
    err = capsys.readouterr().err
    assert_no_leak(
        err,
        registered="my-very-secret-value-123",
        google="ya29.a0AfH6SMCabcdefgh",
        claude="sk-ant-oat01-abcdefghijkl",
    )
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert lines[0]["message"] == "value=[REDACTED] google=[REDACTED]"
    assert lines[0]["level"] == "INFO"
    assert "[REDACTED]" in lines[1]["exc_info"]


def test_kopf_settings_extra_is_not_rendered(capsys: pytest.CaptureFixture[str]) -> None:
    """kopf passes its OperatorSettings as ``extra``; it must neither break nor bloat the line."""
    import dataclasses
    import queue

    @dataclasses.dataclass
    class Settings:
        inbox: queue.SimpleQueue[int] = dataclasses.field(default_factory=queue.SimpleQueue)

    hub_logging.configure("INFO")
    # Not "kopf.objects": once kopf is imported, its event poster on that logger reads the real
    # settings object, which this stand-in is not.
    logging.getLogger("llmhub.test.kopf_like").info(
        "Handler 'sync' succeeded.",
        extra={"settings": Settings(), "k8s_skip": False, "k8s_ref": {"name": "claude"}},
    )

    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["message"] == "Handler 'sync' succeeded."
    assert line["k8s_ref"] == {"name": "claude"}
    assert "settings" not in line
    assert "k8s_skip" not in line


def test_many_registered_values_are_redacted_in_every_form_compiled_or_pending() -> None:
    """Hundreds of providers' values: some sit in the compiled pattern, the newest in the
    pending list; each is redacted raw, as base64 (Secret data) and JSON-escaped."""
    import base64
    import json

    from llmhub_common.logging import REDACTED, redact, secrets

    values = [f"tok-{i:04d}-" + "v" * 24 + '"quoted\\' for i in range(300)]
    for value in values:
        secrets.add(value)
    for value in (values[0], values[150], values[-1]):
        for form in (value, base64.b64encode(value.encode()).decode(), json.dumps(value)[1:-1]):
            line = f"body: {form} end"
            assert redact(line) == f"body: {REDACTED} end"
