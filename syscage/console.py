"""The one line an operator reads on stderr. Standard library only: hooks and wrappers import it."""

from __future__ import annotations

import sys


def say_error(message: str) -> None:
    print(f"syscage: error: {message}", file=sys.stderr, flush=True)


def say_warning(message: str) -> None:
    print(f"syscage: warning: {message}", file=sys.stderr, flush=True)
