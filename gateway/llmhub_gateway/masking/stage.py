"""The masking stage of a turn: mask what goes to the provider, unmask what comes back.

``mask`` rewrites a ``ChatRequest`` (system text, every history turn, the prompt, in that
order, so a stateless OpenAI conversation numbers its values the same way on every call) with
the session's stored placeholders plus any new ones, stores the new ones before the provider
runs, and counts replacements per recognizer (metric and audit line; never a value). The
session store keeps the clear text: every turn re-masks the history it replays, with the same
placeholders, so nothing clear reaches a provider and ``GET /v1/sessions`` shows what was said.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field, replace

from llmhub_gateway.masking.masker import Mapping, Masker
from llmhub_gateway.masking.store import MaskStore
from llmhub_gateway.masking.unmasker import StreamUnmasker
from llmhub_gateway.metrics import Metrics
from llmhub_gateway.providers.base import ChatRequest, Turn


@dataclass(frozen=True, slots=True)
class MaskedTurn:
    """What a turn needs to put the answer back and to store the caller's own text."""

    mapping: Mapping
    prompt: str  # the caller's prompt, clear (the session store keeps clear text)
    counts: MappingABC[str, int] = field(default_factory=dict)

    def unmasker(self) -> StreamUnmasker:
        return StreamUnmasker(self.mapping)


@dataclass(frozen=True, slots=True)
class Finding:
    recognizer: str
    placeholder: str
    start: int
    end: int


class MaskingStage:
    """The configured maskers: ``default`` for every provider unless ``per_provider`` names
    one (None: masking off for it); ``preview`` is what the dry run shows, on or off."""

    def __init__(
        self,
        default: Masker | None,
        store: MaskStore,
        metrics: Metrics,
        per_provider: MappingABC[str, Masker | None] | None = None,
        preview: Masker | None = None,
    ) -> None:
        self.default = default
        self.preview = preview or default
        self.store = store
        self.metrics = metrics
        self.per_provider = dict(per_provider or {})

    def masker(self, provider: str) -> Masker | None:
        return self.per_provider.get(provider, self.default)

    async def mask(
        self, request: ChatRequest, provider: str, *, stored: bool
    ) -> tuple[ChatRequest, MaskedTurn | None]:
        """The request as the provider may see it; ``stored``: the session's placeholders are
        loaded and new ones saved (False for a stateless OpenAI call: a fresh table)."""
        masker = self.masker(provider)
        if masker is None:
            return request, None
        sid = request.session_id
        mapping = Mapping.load(await self.store.load(sid) if stored else {})
        counts: Counter[str] = Counter()
        system = None if request.system is None else masker.mask(request.system, mapping, counts)
        history = tuple(Turn(t.role, masker.mask(t.text, mapping, counts)) for t in request.history)
        prompt = masker.mask(request.prompt, mapping, counts)
        if stored and mapping.added:
            await self.store.add(sid, mapping.added)
        for name, count in counts.items():
            self.metrics.masked.labels(provider, name).inc(count)
        masked = replace(request, prompt=prompt, system=system, history=history)
        return masked, MaskedTurn(mapping, request.prompt, dict(counts))

    def dry_run(self, text: str, provider: str | None = None) -> tuple[str, list[Finding]]:
        """What would be masked in ``text`` on a new session (nothing stored, no metric)."""
        masker = self.preview
        if provider is not None:
            masker = self.per_provider.get(provider, self.preview)
        if masker is None:
            return text, []
        mapping = Mapping()
        findings = []
        out: list[str] = []
        last = 0
        for start, end, kind, name in masker.spans(text, mapping):
            placeholder = mapping.placeholder(kind, text[start:end])
            out.append(text[last:start])
            out.append(placeholder)
            findings.append(Finding(name, placeholder, start, end))
            last = end
        out.append(text[last:])
        return "".join(out), findings

    async def forget(self, session_id: str) -> None:
        await self.store.forget(session_id)

    async def aclose(self) -> None:
        await self.store.aclose()
