"""Checking for leaked secrets without ever echoing one in a failure message."""

from __future__ import annotations


def assert_no_leak(text: str, **values: str) -> None:
    """Fail naming the labels (never the values) of the secrets found in ``text``."""
    leaked = sorted(label for label, value in values.items() if value and value in text)
    assert not leaked, "secret values leaked (labels shown, values withheld)"
