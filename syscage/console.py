"""The one line an operator reads on stderr. Standard library only (`sys`): hooks and wrappers import it,
the runtime wrapper on its passthrough path too."""

from __future__ import annotations

import sys


def say(level: str, message: str, program: str = "syscage") -> None:
    """`program: level: message`, one line on stderr: the only way syscage writes to it."""
    sys.stderr.write(f"{program}: {level}: {message}\n")
    sys.stderr.flush()


def say_error(message: str, program: str = "syscage") -> None:
    say("error", message, program)


def say_warning(message: str, program: str = "syscage") -> None:
    say("warning", message, program)
