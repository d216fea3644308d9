import json
import logging

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
