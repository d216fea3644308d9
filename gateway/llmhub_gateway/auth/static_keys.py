"""``static`` mode: named bearer keys from a mounted Secret, kept only as SHA-256 hashes.

File format, one caller per line: ``<caller-name> sha256:<hex of the key>``; ``#`` comments.
The presented key is hashed and compared with every entry in constant time, so neither timing
nor an early exit tells which entry (or how much of it) matched.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

from llmhub_gateway.auth.principal import Principal

_LINE = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._@/-]{0,127})\s+sha256:(?P<hex>[0-9a-fA-F]{64})$"
)


class StaticKeysError(ValueError):
    """The keys file is unreadable or malformed (refused at start; no key text is quoted)."""


def load_keys(path: Path) -> list[tuple[str, bytes]]:
    """(name, digest) pairs; a malformed line names its line number only."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StaticKeysError(f"AUTH_STATIC_KEYS_FILE {path}: {exc.strerror}") from None
    keys: list[tuple[str, bytes]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _LINE.match(line)
        if match is None:
            raise StaticKeysError(
                f"AUTH_STATIC_KEYS_FILE line {number}: expected '<caller-name> sha256:<64 hex>'"
            )
        keys.append((match["name"], bytes.fromhex(match["hex"])))
    return keys


class StaticKeys:
    mode = "static"

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        self._keys = keys

    @classmethod
    def from_file(cls, path: Path) -> StaticKeys:
        return cls(load_keys(path))

    def names(self) -> list[str]:
        return [name for name, _ in self._keys]

    async def verify(self, token: str) -> Principal | None:
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        found: str | None = None
        for name, expected in self._keys:  # no early exit: every entry is compared
            if hmac.compare_digest(digest, expected) and found is None:
                found = name
        if found is None:
            return None
        return Principal(found, self.mode, label=found)

    async def aclose(self) -> None:
        return None
