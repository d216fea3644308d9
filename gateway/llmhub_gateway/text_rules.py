"""What text and model ids may reach a CLI, checked once for every API and adapter.

The API layer (chat.py) applies all of it before anything is spawned or stored; adapters
call ``check_passable`` and ``check_model`` again for their own arguments, since text that
cannot be exec'd must never reach a fork, whoever calls them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from llmhub_gateway.errors import BadRequest, InvalidModel, InvalidText, PromptTooLarge

INVALID_UNICODE = "the request contains invalid Unicode (a lone surrogate)"
MAX_PROMPT_BYTES = 1024 * 1024  # the default of MAX_PROMPT_BYTES
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}")
# The same rules as JSON Schema patterns, for the OpenAPI document (the checks above answer).
TEXT_PATTERN = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
MODEL_PATTERN = "^" + _MODEL.pattern + "$"


def check_text(*texts: str, max_bytes: int = MAX_PROMPT_BYTES) -> None:
    """Refuse, before anything is spawned or stored, text that no CLI should get: invalid
    Unicode (a lone surrogate from a JSON escape), NUL and other control characters (C0 but
    tab, newline and carriage return; DEL; C1, which terminals may run as escape sequences),
    and more than ``max_bytes`` of UTF-8 in all ``texts`` together (prompt, system, history).
    Linear in the text's size."""
    size = 0
    for text in texts:
        try:
            size += len(text.encode("utf-8"))
        except UnicodeEncodeError:
            raise BadRequest(INVALID_UNICODE) from None
        bad = _CONTROL.search(text)
        if bad is not None:
            raise InvalidText(
                f"the text contains the control character U+{ord(bad.group()):04X} "
                f"at position {bad.start()}; only tab, newline and carriage return are allowed"
            )
    if size > max_bytes:
        raise PromptTooLarge(
            f"the prompt is {size} bytes of text; this gateway accepts at most {max_bytes} "
            "(MAX_PROMPT_BYTES)"
        )


def check_model(model: str) -> str:
    """A model id reaches a CLI's arguments: letters, digits and ``._:/@+-``, starting with a
    letter or digit (never a flag), at most 200 characters."""
    if not _MODEL.fullmatch(model):
        shown = model[:40].encode("unicode_escape").decode("ascii")
        raise InvalidModel(
            f"model id '{shown}' is not valid: use letters, digits and . _ : / @ + - "
            "(starting with a letter or digit), as listed by GET /v1/models"
        )
    return model


def check_passable(texts: Iterable[str | None]) -> None:
    """Text that can travel in argv, env or a pipe at all: no NUL (exec fails after fork) and
    valid Unicode. (Other control characters are the API's rule, not exec's.)"""
    for text in texts:
        if text is None:
            continue
        if "\x00" in text:
            raise InvalidText("the text contains a NUL character, which cannot be sent")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest(INVALID_UNICODE) from None
