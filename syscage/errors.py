"""The one exception type syscage raises for expected, operator-facing failures."""

from __future__ import annotations


class SyscageError(Exception):
    """An expected failure: printed as one line (what went wrong, what to do), never a traceback."""

    def __init__(self, what: str, hint: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.what}; {self.hint}" if self.hint else self.what
