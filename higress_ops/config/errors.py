"""Config problems, each pinned to a JSON pointer into the `higress` document."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a config; `pointer` is RFC 6901 ("" is the whole document)."""

    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.pointer}: {self.message}" if self.pointer else self.message


class ConfigError(Exception):
    """A config a user must fix. Carries every problem found, not just the first."""

    def __init__(self, problems: Sequence[Problem], source: str = "", *, warnings: Sequence[Problem] = ()) -> None:
        self.problems: list[Problem] = list(problems)
        self.source = source
        self.warnings: list[Problem] = list(warnings)  # found beside the problems: shown with them, never hidden
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def single(cls, pointer: str, message: str, source: str = "") -> ConfigError:
        return cls([Problem(pointer, message)], source)


def pointer(parts: Iterable[str | int]) -> str:
    """JSON pointer for a path, escaping '~' and '/' as RFC 6901 asks."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)
