"""Put placeholders back into a streamed answer without ever emitting half of one.

The model's deltas may cut ``[AWS_EC2_1]`` anywhere; the unmasker holds back a tail that could
still become a placeholder (its last ``[`` and at most ``placeholders.LONGEST`` characters) and
releases it with the next delta or at ``flush``. What the model invents or mangles
(``[AWS_EC2_9]`` never assigned, ``[aws_ec2_1]``) stays as it is. Values hold no quote,
backslash or control character (``recognizers``), so an answer that is JSON stays valid JSON.
"""

from __future__ import annotations

from llmhub_gateway.masking import placeholders
from llmhub_gateway.masking.masker import Mapping, unmask


class StreamUnmasker:
    """One per answer stream."""

    __slots__ = ("_carry", "_mapping")

    def __init__(self, mapping: Mapping) -> None:
        self._mapping = mapping
        self._carry = ""

    def feed(self, delta: str) -> str:
        """The text that can be released now (possibly empty)."""
        text = self._carry + delta if self._carry else delta
        cut = placeholders.open_tail(text)
        self._carry = text[cut:]
        return unmask(text[:cut], self._mapping)

    def flush(self) -> str:
        """The end of the stream: whatever was held back, as it is (never completed)."""
        text, self._carry = self._carry, ""
        return unmask(text, self._mapping)
