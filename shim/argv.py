"""Read a runc/crun command line exactly as the real runtime will: its subcommand, global options, and
for `create`/`run` the container id, bundle and spec file.

syscage-runtime enforces what it reads here, so a difference from the runtime is a container run
under a spec nobody checked. Two dialects, from their sources:

* runc (urfave/cli 1.22 over Go's flag package): global options end at the first non-option. A
  command's options may also follow its operands: urfave moves every argument that names one of the
  command's options (`-x`, `--x`, `-x=v`, `--x=v`), together with the argument after it when that has
  no `=` and names no option (even after a boolean option), in front of the rest, stopping at `--`.
  Go's flag package then reads options up to the first operand or `--`; a value option takes the next
  argument whatever it looks like; the last of repeated options wins; `-b` and `--bundle` together
  are an error. Exactly one operand, the id. The bundle is chdir'ed into (empty: stay).
* crun (argp, in order): options end at the first operand or `--`; long options may be abbreviated
  to a unique prefix; `-bDIR`; the last of repeated options wins; `--config`/`-f` names the spec file
  (`config.json` in the bundle unless given: a relative name other than exactly `config.json` is
  relative to the working directory).

Only the standard library: this runs on every runtime call, including the passthrough path.
"""

from __future__ import annotations

import os


class Unparsable(Exception):
    """A create/run command line syscage cannot read the way the runtime would (an unknown option)."""


class _Record(tuple):
    """A named tuple without importing typing or collections (the passthrough path pays for every import)."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def __new__(cls, *values: object) -> _Record:
        if len(values) != len(cls._fields):
            raise TypeError(f"{cls.__name__} takes {len(cls._fields)} values")
        return tuple.__new__(cls, values)

    def __getattr__(self, name: str) -> object:
        try:
            return self[self._fields.index(name)]
        except ValueError:
            raise AttributeError(name) from None


class CreateCall(_Record):
    """container_id; bundle: absolute, with symbolic links resolved as the runtime's chdir resolves them;
    config: absolute path of the spec the runtime reads."""

    __slots__ = ()
    _fields = ("container_id", "bundle", "config")
    container_id: str
    bundle: str
    config: str


class _Options(_Record):
    """values: options that take a value (long and short names alike); flags: options that take none;
    pairs: (long, short) names of one option; stop: options after which the runtime prints and stops."""

    __slots__ = ()
    _fields = ("values", "flags", "pairs", "stop")
    values: frozenset[str]
    flags: frozenset[str]
    pairs: tuple[tuple[str, ...], ...]
    stop: frozenset[str]


def _options(values: str, flags: str, pairs: str = "", stop: str = "") -> _Options:
    return _Options(frozenset(values.split()), frozenset(flags.split()),
                    tuple(tuple(p.split("/")) for p in pairs.split()), frozenset(stop.split()))


# runc 1.1 (and 1.2's --pidfd-socket); urfave adds help/h to every command and to the global set.
_RUNC_GLOBAL = _options("log log-format root criu rootless", "debug systemd-cgroup help h version v",
                        "help/h version/v", "help h version v")
_RUNC_CREATE = _options("bundle b console-socket pid-file preserve-fds pidfd-socket", "no-pivot no-new-keyring help h",
                        "bundle/b help/h", "help h")
_RUNC_COMMANDS = {"create": _RUNC_CREATE,
                  "run": _options("bundle b console-socket pid-file preserve-fds pidfd-socket",
                                  "no-pivot no-new-keyring help h detach d keep no-subreaper",
                                  "bundle/b help/h detach/d", "help h")}
# crun 1.8 (and later's --log-level); argp adds --help/-?, --usage and the hidden --program-name, --HANG.
_ARGP = ("program-name", "help ? usage HANG")
_CRUN_GLOBAL = _options(f"cgroup-manager log log-format log-level root rootless {_ARGP[0]}",
                        f"debug systemd-cgroup version V v {_ARGP[1]}", stop="version V v help ? usage")
_CRUN_CREATE = _options(f"bundle b config f console-socket preserve-fds pid-file {_ARGP[0]}",
                        f"no-pivot no-subreaper no-new-keyring {_ARGP[1]}", stop="help ? usage")
_CRUN_COMMANDS = {"create": _CRUN_CREATE,
                  "run": _options(f"bundle b config f console-socket preserve-fds pid-file {_ARGP[0]}",
                                  f"no-pivot no-subreaper no-new-keyring detach d {_ARGP[1]}", stop="help ? usage")}
_CRUN_SHORT = {"b": "bundle", "f": "config", "d": "detach"}


def dialect(runtime_path: str) -> str:
    """How the real runtime reads its command line: "crun", or "runc" (for anything else)."""
    return "crun" if "crun" in os.path.basename(runtime_path) else "runc"


# ---------------------------------------------------------------------------------------------- runc


def _go_option(arg: str) -> tuple[str, str | None] | None:
    """Go's flag package: ('name', value or None) for an option, None for an operand."""
    if len(arg) < 2 or arg[0] != "-":
        return None
    name, eq, value = arg[2 if arg[1] == "-" else 1:].partition("=")
    return name, (value if eq else None)


def _go_parse(args: list[str], spec: _Options) -> tuple[dict[str, str], list[str]] | None:
    """Options (last one wins) and operands, as flag.FlagSet.Parse plus urfave's normalizeFlags; None
    when the runtime refuses the line (it says why); raises for an option it would not know."""
    seen: dict[str, str] = {}
    i = 0
    while i < len(args) and args[i] != "--":
        option = _go_option(args[i])
        if option is None:
            break
        name, value = option
        i += 1
        if not name or name[0] in "-=":
            return None  # "bad flag syntax"
        if name in spec.values:
            if value is None:
                if i == len(args):
                    return None  # "flag needs an argument"
                value, i = args[i], i + 1
        elif name not in spec.flags:
            raise Unparsable(f"unknown option {args[i - 1][:60]!r}")
        elif value is None:
            value = "true"
        seen[name] = value
    if i < len(args) and args[i] == "--":
        i += 1
    for names in spec.pairs:
        if sum(n in seen for n in names) > 1:
            return None  # "Cannot use two forms of the same flag"
        for n in names:
            if n in seen:
                seen.update(dict.fromkeys(names, seen[n]))
    return seen, args[i:]


def _urfave_names(arg: str, spec: _Options) -> bool:
    """urfave's argIsFlag: does `arg` name one of the command's options?"""
    if arg in ("-", "--") or not arg.startswith("-"):
        return False
    name = arg.replace("-", "", 2) if arg.startswith("--") else arg
    name = name.replace("-", "", 1) if name.startswith("-") else name
    return name.split("=")[0] in spec.values or name.split("=")[0] in spec.flags


def _urfave_reorder(args: list[str], spec: _Options) -> list[str]:
    """urfave's reorderArgs: the command's options (and what may be their values) first."""
    options: list[str] = []
    operands: list[str] = []
    value_may_follow = False
    for i, arg in enumerate(args):
        if value_may_follow and not _urfave_names(arg, spec):
            value_may_follow = False
            options.append(arg)
        elif arg == "--":
            operands = ["--", *operands, *args[i + 1:]]
            break
        elif _urfave_names(arg, spec):
            options.append(arg)
            value_may_follow = "=" not in arg
        else:
            operands.append(arg)
    return options + operands


def _truthy(value: str) -> bool:
    return value in ("1", "t", "T", "TRUE", "true", "True")  # Go's strconv.ParseBool


# ---------------------------------------------------------------------------------------------- crun


def _getopt(args: list[str], spec: _Options) -> tuple[dict[str, str], int] | None:
    """getopt_long in order, as argp runs it: options (by long name; last wins) and the index of the
    first operand; None when the runtime refuses the line."""
    longs = {n for n in spec.values | spec.flags if len(n) > 1}
    seen: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            return seen, i
        if not arg.startswith("-") or arg == "-":
            return seen, i - 1
        if arg.startswith("--"):
            typed, eq, value = arg[2:].partition("=")
            matches = [typed] if typed in longs else sorted(n for n in longs if n.startswith(typed) and typed)
            if len(matches) != 1:
                return None if typed and any(n.startswith(typed) for n in longs) else _unknown(arg)
            name = matches[0]
            if name in spec.values:
                if not eq:
                    if i == len(args):
                        return None
                    value, i = args[i], i + 1
            elif eq and name != "HANG":
                return None  # "option doesn't allow an argument"
            seen[name] = value
            continue
        for pos in range(1, len(arg)):
            short = arg[pos]
            if short in spec.values:
                value = arg[pos + 1:]
                if not value:
                    if i == len(args):
                        return None
                    value, i = args[i], i + 1
                seen[_CRUN_SHORT.get(short, short)] = value
                break
            if short not in spec.flags or len(short) != 1:
                return _unknown(arg)
            seen[_CRUN_SHORT.get(short, short)] = ""
    return seen, i


def _unknown(arg: str) -> None:
    raise Unparsable(f"unknown option {arg[:60]!r}")


# ------------------------------------------------------------------------------------------- callers


class Invocation(_Record):
    """subcommand: None when there is none or the runtime stops before one (--help, an error); index: of
    the subcommand in args, -1 without one; options: global options by long name, the last one given."""

    __slots__ = ()
    _fields = ("subcommand", "index", "options")
    subcommand: str | None
    index: int
    options: dict[str, str]


def parse_global(args: list[str], runtime_dialect: str = "runc") -> Invocation:
    """The global options and the subcommand; raises Unparsable for a global option syscage does not know."""
    if runtime_dialect == "crun":
        parsed = _getopt(args, _CRUN_GLOBAL)
        if parsed is None or parsed[1] >= len(args) or _CRUN_GLOBAL.stop & parsed[0].keys():
            return Invocation(None, -1, {})
        return Invocation(args[parsed[1]], parsed[1], parsed[0])
    go = _go_parse(args, _RUNC_GLOBAL)
    if go is None or not go[1] or any(_truthy(go[0].get(n, "")) for n in _RUNC_GLOBAL.stop):
        return Invocation(None, -1, {})
    return Invocation(go[1][0], len(args) - len(go[1]), go[0])


def parse_create(args: list[str], sub_index: int, runtime_dialect: str = "runc",
                 cwd: str | None = None) -> CreateCall | None:
    """Id, bundle and spec file of a `create`/`run` at args[sub_index]; None when the runtime will not
    create a container from this line (it reports why, or prints its help); raises Unparsable for an
    option syscage does not know, so that nothing it cannot read runs unchecked."""
    sub, rest = args[sub_index], args[sub_index + 1:]
    base = cwd or os.getcwd()
    if runtime_dialect == "crun":
        parsed = _getopt(rest, _CRUN_COMMANDS[sub])
        if parsed is None or _CRUN_CREATE.stop & parsed[0].keys() or len(rest) - parsed[1] != 1:
            return None
        options, container_id = parsed[0], rest[parsed[1]]
        bundle = _resolve(base, options.get("bundle")) if "bundle" in options else os.path.realpath(base)
        config = options.get("config", "config.json")
        config = os.path.join(bundle, config) if config == "config.json" else _resolve(base, config)
        return CreateCall(container_id, bundle, config) if options.get("bundle") != "" else None
    spec = _RUNC_COMMANDS[sub]
    go = _go_parse(_urfave_reorder(rest, spec), spec)
    if go is not None and len(go[1]) > 1:
        for arg in rest[:rest.index("--") if "--" in rest else None]:
            if arg.startswith("-") and arg != "-" and not _urfave_names(arg, spec):
                _unknown(arg)  # runc 1.1 refuses the operands; a later runc knowing the option may not
    if go is None or len(go[1]) != 1 or not go[1][0] or any(_truthy(go[0].get(n, "")) for n in spec.stop):
        return None
    bundle = _resolve(base, go[0].get("bundle") or None)
    return CreateCall(go[1][0], bundle, os.path.join(bundle, "config.json"))


def _resolve(base: str, path: str | None) -> str:
    """Where chdir(path) from `base` lands (the kernel follows symbolic links before `..`)."""
    return os.path.realpath(os.path.join(base, path) if path else base)


def find_operand(args: list[str], sub_index: int) -> str | None:
    """The first operand after a subcommand whose options take no values (`delete [--force] ID`)."""
    for i in range(sub_index + 1, len(args)):
        if args[i] == "--":
            return args[i + 1] if i + 1 < len(args) else None
        if not args[i].startswith("-") or args[i] == "-":
            return args[i]
    return None
