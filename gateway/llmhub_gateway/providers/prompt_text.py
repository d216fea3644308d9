"""User text on its way to the Gemini CLI: refused early when it cannot be passed safely, and
shaped so that no command handler of the CLI mistakes it for a command.

NUL (and text that is not valid Unicode) can travel neither in argv nor in the environment: exec
fails after fork. Such text is refused with a 400 before anything is spawned. Everything else is
passed as data (ACP JSON content, or the PTY path's stdin pipe), never where a flag parser sees
it.

The CLI runs a prompt whose text, trimmed, starts with ``/`` or ``$`` and names one of its
commands (``/help``, ``/about``, ``/memory``, ``$init``...) as that command instead of sending it
to the model (ACP: packages/cli/src/acp/acpCommandHandler.ts; headless: slash commands). Such a
prompt gets one zero-width space in front, so the CLI sees no command and the model sees the
user's text unchanged after an invisible character.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from llmhub_gateway.errors import BadRequest

# What JavaScript's String.prototype.trim() removes, as the CLI trims before matching.
_LEADING = re.compile(r"^[\s\ufeff\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*")
COMMAND_GUARD = "\u200b"
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


class InvalidText(BadRequest):
    """Text or a model id the CLI cannot be given (400): refused before any process starts."""


def check_texts(texts: Iterable[str | None]) -> None:
    """Refuse NUL and text that is not encodable as UTF-8 (lone surrogates)."""
    for text in texts:
        if text is None:
            continue
        if "\x00" in text:
            raise InvalidText("the text contains a NUL character, which cannot be sent")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidText("the text is not valid Unicode (lone surrogate)") from None


def check_model(model: str) -> None:
    """A model id goes into argv: letters, digits and ``._:-`` only."""
    if not _MODEL.fullmatch(model):
        raise InvalidText("the model id contains characters a model id cannot have")


def looks_like_command(text: str) -> bool:
    rest = _LEADING.sub("", text, count=1)
    return rest[:1] in ("/", "$")


def command_safe(text: str) -> str:
    """``text``, with the guard in front when the CLI would read it as a command."""
    return COMMAND_GUARD + text if looks_like_command(text) else text


def command_safe_blocks(text: str) -> list[dict[str, str]]:
    """ACP prompt content: the user's text as one text block, preceded by a guard block when
    it would otherwise be read as a command (the CLI concatenates leading text blocks)."""
    blocks = [{"type": "text", "text": text}]
    if looks_like_command(text):
        blocks.insert(0, {"type": "text", "text": COMMAND_GUARD})
    return blocks
