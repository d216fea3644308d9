"""The masking stage built from the gateway's settings (MASKING_*)."""

from __future__ import annotations

from collections.abc import Mapping

from llmhub_gateway.masking.masker import Masker
from llmhub_gateway.masking.recognizers import Recognizer, extra, select
from llmhub_gateway.masking.stage import MaskingStage
from llmhub_gateway.masking.store import MaskStore
from llmhub_gateway.metrics import Metrics

OFF = ("off", "none")


def recognizers(names: str, extras: Mapping[str, str]) -> tuple[Recognizer, ...]:
    """The named built-ins then every extra pattern; ValueError on an unknown name."""
    picked = select(part.strip() for part in names.split(",") if part.strip())
    return (*picked, *(extra(name, pattern) for name, pattern in extras.items()))


def build_stage(
    *,
    enabled: bool,
    names: str,
    extras: Mapping[str, str],
    providers: Mapping[str, str],
    store: MaskStore,
    metrics: Metrics,
) -> MaskingStage:
    """``providers`` maps a provider to ``off``, ``all`` or its own comma list of
    recognizers; the rest follow ``enabled`` and ``names``."""
    configured = Masker(recognizers(names, extras))
    per_provider: dict[str, Masker | None] = {}
    for provider, value in providers.items():
        off = value.strip().lower() in OFF
        per_provider[provider] = None if off else Masker(recognizers(value, extras))
    default = configured if enabled else None
    return MaskingStage(default, store, metrics, per_provider, preview=configured)
