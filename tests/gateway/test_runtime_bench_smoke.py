"""The runtime benchmark's --quick mode end to end: both providers, cold against warm, with the
real gateway and the fake CLIs (start-up 0.5 s): warm continued turns are much faster, and so
are new conversations (new sessions, OpenAI requests, a sustained rate of new sessions), native
resume sends O(1) tokens per turn while replay grows, and no turn fails."""

from __future__ import annotations

import json
import re

import pytest

from bench import runtime_bench


def test_quick_runtime_bench_shows_warm_and_native_resume(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert runtime_bench.main(["--quick"]) == 0
    out = capsys.readouterr().out
    parts = re.split(r"^--- (\w+):", out, flags=re.M)
    sections = dict(zip(parts[1::2], parts[2::2], strict=True))
    assert set(sections) == {"claude", "gemini"}
    for section in sections.values():
        errors = re.findall(r"errors cold (\d+) warm (\d+)", section)
        assert len(errors) == 7  # new, continued, OpenAI at 1 and 4 clients; sustained
        assert set(errors) == {("0", "0")}
        assert min(_ratios(section, "continued sessions:")) > 3  # cold pays a 0.5 s start-up
        # New conversations start on a running CLI (a reset Claude CLI, an ACP session).
        for title in ("new sessions:", "OpenAI requests", "new sessions at a sustained"):
            assert min(_ratios(section, title)) > 2, title
        cold = json.loads(re.search(r"cold \(replay\): (\[.*\])", section).group(1))
        warm = json.loads(re.search(r"warm \(native\): (\[.*\])", section).group(1))
        assert len(cold) == len(warm) == 6
        assert cold == sorted(cold)
        assert cold[-1] > 3 * cold[0]  # the replayed transcript grows every turn
        assert len(set(warm)) == 1  # native resume: the same new words each turn
    assert "targets: not judged with --quick" in out


def _ratios(section: str, title: str) -> list[float]:
    """The cold/warm first-byte ratios of the rows under ``title`` (up to the next title)."""
    body = section.split(title, 1)[1]
    rows = re.split(r"^\S.*:$", body, maxsplit=1, flags=re.M)[0]
    ratios = [float(r) for r in re.findall(r"first byte .*ratio\s+([\d.]+)x", rows)]
    assert ratios, title
    return ratios
