"""Reads what the shipping tests check in the Dockerfiles: ARG defaults, stages, COPY sources."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted([*REPO.glob("Dockerfile.*"), *REPO.glob("kind/Dockerfile.*")])
DIGEST_PIN = re.compile(r"^[a-z0-9./_-]+(:[A-Za-z0-9._-]+)?@sha256:[0-9a-f]{64}$")


@dataclass
class Stage:
    """One FROM stage: its base reference (ARGs expanded), its name and its instructions."""

    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def copy_sources(self) -> set[str]:
        """What COPY takes from the build context (not from other stages)."""
        found: set[str] = set()
        for word, rest in self.instructions:
            if word == "COPY" and "--from=" not in rest:
                *sources, _dest = [p for p in rest.split() if not p.startswith("--")]
                found.update(s.rstrip("/") for s in sources)
        return found


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), line continuations joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def global_args(path: Path) -> dict[str, str]:
    """ARG defaults declared before the first FROM (the ones a FROM line may use)."""
    found: dict[str, str] = {}
    for word, rest in instructions(path):
        if word == "FROM":
            break
        if word == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            found[name] = value
    return found


def stage_args(path: Path) -> dict[str, str]:
    """Every ARG default of the file, whichever stage declares it."""
    return {
        rest.partition("=")[0]: rest.partition("=")[2]
        for word, rest in instructions(path)
        if word == "ARG" and "=" in rest
    }


def stages(path: Path) -> list[Stage]:
    args = global_args(path)
    out: list[Stage] = []
    for word, rest in instructions(path):
        if word == "FROM":
            parts = [p for p in rest.split() if not p.startswith("--")]
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), parts[0])
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else ""
            out.append(Stage(base, name))
        elif out:
            out[-1].instructions.append((word, rest))
    return out
