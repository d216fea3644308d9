import json
import logging

import pytest

from llmhub_common import logging as hub_logging


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
    assert "my-very-secret-value-123" not in err
    assert "ya29.a0AfH6SMCabcdefgh" not in err
    assert "sk-ant-oat01-abcdefghijkl" not in err
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
    logging.getLogger("tests.kopf_like_object_logger").info(
        "Handler 'sync' succeeded.",
        extra={"settings": Settings(), "k8s_skip": False, "k8s_ref": {"name": "claude"}},
    )

    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["message"] == "Handler 'sync' succeeded."
    assert line["k8s_ref"] == {"name": "claude"}
    assert "settings" not in line
    assert "k8s_skip" not in line
