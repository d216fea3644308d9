"""The benchmark's --quick mode runs end to end and reports both servers and the targets."""

from __future__ import annotations

import re
import shutil

import pytest

from bench import gateway_bench


def test_quick_bench_reports_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    assert gateway_bench.main(["--quick"]) == 0
    out = capsys.readouterr().out
    # wrk drives saturation whenever it exists (the bench installs it when it may)
    client = "wrk -t1" if shutil.which("wrk") else "the Python client"
    assert f"saturation load: {client}" in out
    assert "idle RSS: gateway" in out
    assert "c= 50 saturation:" in out
    assert "c=200 saturation:" in out
    assert out.count("at 1000 rps offered:") == 2
    assert out.count("added latency p50") == 2
    counts = re.findall(r"(\d+) errors", out)
    assert len(counts) == 4
    assert set(counts) == {"0"}
    assert out.count("ratio ") == 2
    cpu = re.findall(r"server CPU per request: gateway (\d+) us, bare (\d+) us", out)
    assert len(cpu) == 2
    assert all(int(gw) > 0 and int(bare) > 0 for gw, bare in cpu)
    assert "targets:" in out
