"""Turn a request with history into one prompt, so any replica can continue any session."""

from __future__ import annotations

from llmhub_gateway.providers.base import ChatRequest

_SPEAKER = {"user": "User", "assistant": "Assistant"}


def render_prompt(request: ChatRequest, *, include_system: bool = False) -> str:
    """The new prompt, preceded by the replayed transcript (and system text if asked)."""
    parts: list[str] = []
    if include_system and request.system:
        parts.append(f"<system>\n{request.system}\n</system>")
    if request.history:
        lines = [f"{_SPEAKER[turn.role]}: {turn.text}" for turn in request.history]
        parts.append(
            "<conversation_so_far>\n" + "\n\n".join(lines) + "\n</conversation_so_far>\n"
            "Continue this conversation. The user's new message follows."
        )
    parts.append(request.prompt)
    return "\n\n".join(parts)
