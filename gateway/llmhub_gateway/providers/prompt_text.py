"""User text on its way to the Gemini CLI, shaped so that no command handler of the CLI
mistakes it for a command. (What text may reach a CLI at all: text_rules.py. It is passed as
data -- ACP JSON content, or the PTY path's stdin pipe -- never where a flag parser sees it.)

The CLI runs a prompt whose text, trimmed, starts with ``/`` or ``$`` and names one of its
commands (``/help``, ``/about``, ``/memory``, ``$init``...) as that command instead of sending it
to the model (ACP: packages/cli/src/acp/acpCommandHandler.ts; headless: slash commands). Such a
prompt gets one zero-width space in front, so the CLI sees no command and the model sees the
user's text unchanged after an invisible character.
"""

from __future__ import annotations

import re

# What JavaScript's String.prototype.trim() removes, as the CLI trims before matching.
_LEADING = re.compile(r"^[\s\ufeff\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*")
COMMAND_GUARD = "\u200b"


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
