"""Find the subcommand and bundle in a runc/crun command line the way those runtimes parse it.

Only the standard library: this runs on every runtime call, including the passthrough path.
"""

from __future__ import annotations

import os

# Global options that take a value (runc and crun), in their long spelling without dashes.
_GLOBAL_VALUE_FLAGS = {"log", "log-format", "log-level", "root", "criu", "rootless", "cgroup-manager"}
# Options of `create` / `run` that take a value.
_COMMAND_VALUE_FLAGS = {"bundle", "b", "console-socket", "pid-file", "preserve-fds", "config", "f", "pidfd-socket"}


def _flag_name(arg: str) -> tuple[str, bool]:
    """'--root=/x' -> ('root', True); '-b' -> ('b', False). Go's flag parsing accepts one or two dashes."""
    name = arg.lstrip("-")
    if "=" in name:
        return name.split("=", 1)[0], True
    return name, False


def find_subcommand(args: list[str]) -> tuple[str | None, int]:
    """(subcommand, its index in args), skipping global flags and their values."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return (args[i + 1], i + 1) if i + 1 < len(args) else (None, -1)
        if arg.startswith("-") and arg != "-":
            name, inline = _flag_name(arg)
            i += 1 if inline or name not in _GLOBAL_VALUE_FLAGS else 2
            continue
        return arg, i
    return None, -1


def find_option(args: list[str], start: int, names: set[str],
                value_flags: set[str] = _COMMAND_VALUE_FLAGS) -> str | None:
    """Value of the first of `names` among options from `start` up to the first positional argument."""
    i = start
    while i < len(args):
        arg = args[i]
        if arg == "--" or not arg.startswith("-") or arg == "-":
            return None  # options end at the first positional argument
        name, inline = _flag_name(arg)
        if name in names:
            if inline:
                return arg.split("=", 1)[1]
            return args[i + 1] if i + 1 < len(args) else None
        i += 1 if inline or name not in value_flags else 2
    return None


def find_bundle(args: list[str], sub_index: int, cwd: str | None = None) -> str:
    """Absolute bundle directory of a create/run call: --bundle/-b, else the working directory."""
    bundle = find_option(args, sub_index + 1, {"bundle", "b"})
    base = cwd or os.getcwd()
    return os.path.normpath(os.path.join(base, bundle)) if bundle else base


def find_container_id(args: list[str], sub_index: int) -> str | None:
    i = sub_index + 1
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return args[i + 1] if i + 1 < len(args) else None
        if not arg.startswith("-") or arg == "-":
            return arg
        name, inline = _flag_name(arg)
        i += 1 if inline or name not in _COMMAND_VALUE_FLAGS else 2
    return None


def find_operand(args: list[str], sub_index: int) -> str | None:
    """The first operand after a subcommand whose options take no values (`delete [--force] ID`)."""
    for i in range(sub_index + 1, len(args)):
        if args[i] == "--":
            return args[i + 1] if i + 1 < len(args) else None
        if not args[i].startswith("-") or args[i] == "-":
            return args[i]
    return None


def find_global_option(args: list[str], name: str) -> str | None:
    """Value of a global option (before the subcommand), e.g. --log."""
    return find_option(args, 0, {name}, _GLOBAL_VALUE_FLAGS)
