"""Replace identifiers by placeholders, the same value by the same placeholder in a session.

A ``Mapping`` is one session's table (placeholder -> value, and back); masking adds to it and
reports what it added, so the caller can store only the new entries. Overlapping matches are
resolved by recognizer priority (an ARN wins over the account id inside it, a resource id over
its subscription GUID), then by length. Placeholder-shaped strings of a known kind already in
the caller's text are masked too (as ``[MASK_LITERAL_n]``), so the model's answer is put back
exactly: unmask(mask(x)) == x for every x.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Sequence
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field

from llmhub_gateway.masking import placeholders
from llmhub_gateway.masking.recognizers import Recognizer


@dataclass(slots=True)
class Mapping:
    """One session's placeholders; ``added`` holds those created since it was loaded."""

    by_placeholder: dict[str, str] = field(default_factory=dict)
    by_value: dict[tuple[str, str], str] = field(default_factory=dict)
    next_number: dict[str, int] = field(default_factory=dict)
    added: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, stored: MappingABC[str, str]) -> Mapping:
        mapping = cls()
        for placeholder, value in stored.items():
            parsed = placeholders.PLACEHOLDER.fullmatch(placeholder)
            if parsed is None:
                continue
            kind, number = parsed.group(1), int(parsed.group(2))
            mapping.by_placeholder[placeholder] = value
            mapping.by_value[(kind, value)] = placeholder
            mapping.next_number[kind] = max(mapping.next_number.get(kind, 1), number + 1)
        return mapping

    def placeholder(self, kind: str, value: str) -> str:
        found = self.by_value.get((kind, value))
        if found is None:
            number = self.next_number.get(kind, 1)
            self.next_number[kind] = number + 1
            found = placeholders.make(kind, number)
            self.by_placeholder[found] = value
            self.by_value[(kind, value)] = found
            self.added[found] = value
        return found


class Masker:
    """The configured recognizers, applied in order; one instance serves every turn."""

    def __init__(self, recognizers: Sequence[Recognizer]) -> None:
        self.recognizers = tuple(recognizers)
        kinds = {placeholders.LITERAL}
        kinds.update(r.kind for r in recognizers)
        kinds.update(("PRIVATE_CIDR", "LINK_LOCAL_IP", "LINK_LOCAL_CIDR"))
        self._kinds = frozenset(kinds)

    def _literals(self, text: str, mapping: Mapping) -> Iterable[tuple[int, int, str]]:
        for match in placeholders.PLACEHOLDER.finditer(text):
            if match.group(1) in self._kinds or match.group() in mapping.by_placeholder:
                yield match.start(), match.end(), placeholders.LITERAL

    def spans(self, text: str, mapping: Mapping) -> list[tuple[int, int, str, str]]:
        """Non-overlapping (start, end, kind, recognizer) in text order."""
        found: list[tuple[int, int, int, str, str]] = []
        for start, end, kind in self._literals(text, mapping):
            found.append((start, -end, -1, kind, placeholders.LITERAL.lower()))
        for rank, recognizer in enumerate(self.recognizers):
            for start, end, kind in recognizer.find(text):
                found.append((start, -end, rank, kind, recognizer.name))
        if not found:
            return []
        claimed: list[tuple[int, int, str, str]] = []
        starts: list[int] = []  # of the claimed spans, sorted; they never overlap
        ends: list[int] = []
        for start, neg_end, _, kind, name in sorted(found, key=lambda f: (f[2], f[0], f[1])):
            end = -neg_end
            at = bisect.bisect_right(starts, start)
            if (at and ends[at - 1] > start) or (at < len(starts) and starts[at] < end):
                continue
            starts.insert(at, start)
            ends.insert(at, end)
            claimed.append((start, end, kind, name))
        claimed.sort()
        return claimed

    def mask(self, text: str, mapping: Mapping, counts: Counter[str]) -> str:
        """``text`` with every identifier replaced; ``counts`` gains one per replacement, by
        recognizer name."""
        spans = self.spans(text, mapping)
        if not spans:
            return text
        out: list[str] = []
        last = 0
        for start, end, kind, name in spans:
            out.append(text[last:start])
            out.append(mapping.placeholder(kind, text[start:end]))
            counts[name] += 1
            last = end
        out.append(text[last:])
        return "".join(out)


def unmask(text: str, mapping: Mapping) -> str:
    """Every placeholder the session assigned, put back; anything else stays as it is."""
    if "[" not in text or not mapping.by_placeholder:
        return text
    values = mapping.by_placeholder
    return placeholders.PLACEHOLDER.sub(lambda m: values.get(m.group(), m.group()), text)
