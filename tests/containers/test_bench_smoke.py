"""The image benchmark's --quick mode runs on this tier's engine and prints every row."""

from __future__ import annotations

import re

import pytest

from bench import images_bench
from tests.containers.images import Images


def test_quick_image_bench_prints_warm_builds_and_sizes(
    images: Images, capsys: pytest.CaptureFixture[str]
) -> None:
    assert images_bench.main(["--quick"]) == 0
    out = capsys.readouterr().out
    for component in ("operator", "gateway"):
        warm = re.search(
            rf"^{component} warm build, nothing changed \(s\)\s+([\d.]+)\s+<=30", out, re.M
        )
        assert warm, out
        assert float(warm.group(1)) < images_bench.TARGET_WARM_S
        size = re.search(rf"^{component} image size \(MB\)\s+([\d.]+)", out, re.M)
        assert size, out
        assert float(size.group(1)) > 100
