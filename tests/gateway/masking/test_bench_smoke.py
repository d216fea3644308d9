"""The masking benchmark's --quick mode runs end to end, registered in ``python -m bench``,
and reports every measurement and the targets."""

from __future__ import annotations

import importlib
import re

import pytest

from bench.__main__ import SUITES


def test_quick_masking_bench(capsys: pytest.CaptureFixture[str]) -> None:
    bench = importlib.import_module(SUITES["masking"])
    assert bench.main(["--quick"]) == 0
    out = capsys.readouterr().out
    added = re.findall(r"(\d+) KB: masking off p50 [\d.]+ ms p99 [\d.]+ ms; added p50", out)
    assert added == ["1", "10", "100"]
    rps = re.search(r"one core: (\d+) requests/s of 10 KB per CPU second", out)
    assert rps is not None
    assert int(rps.group(1)) > 0
    memory = re.search(r"10000 mappings: Redis (\d+) bytes each by MEMORY USAGE", out)
    assert memory is not None
    assert 0 < int(memory.group(1)) <= 200  # the bound holds even on a loaded box
    assert out.count("in CPU time added p50") == 3
    assert "targets: added p99 (CPU) at 10 KB <= 2.0 ms" in out
