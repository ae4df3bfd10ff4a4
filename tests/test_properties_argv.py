"""Property: for every generated command line, syscage-runtime reads the same subcommand, container id
and bundle as runc (and crun) would. The models below follow the runtimes' code step by step
(urfave/cli 1.22.9 `Command.Run` with `reorderArgs`, Go's `flag.FlagSet.parseOne` and urfave's
`normalizeFlags`; glibc's argp/getopt_long in order), including the errors the shim does not bother
to detect (values of boolean and integer options). integration/test_argv_runc.py runs generated lines
through the real binaries."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from syscage.shim.argv import Unparsable, parse_create, parse_global

CWD = "/cwd"
MANY = settings(max_examples=10_000, deadline=None)


class Refused(Exception):
    """The runtime refuses the line (or prints help) and creates nothing."""


class BadValue(Refused):
    """Refused only because of an option's value, which the shim need not check."""


# ---------------------------------------------------------------- runc: urfave/cli 1.22.9 and Go's flag package

# name -> kind ("string", "bool", "int"); groups of names that are one option ("bundle, b").
RUNC_APP = {"debug": "bool", "log": "string", "log-format": "string", "root": "string", "criu": "string",
            "systemd-cgroup": "bool", "rootless": "string", "help": "bool", "h": "bool", "version": "bool", "v": "bool"}
RUNC_APP_GROUPS = [("help", "h"), ("version", "v")]
RUNC_CREATE = {"bundle": "string", "b": "string", "console-socket": "string", "pidfd-socket": "string",
               "pid-file": "string", "no-pivot": "bool", "no-new-keyring": "bool", "preserve-fds": "int",
               "help": "bool", "h": "bool"}
RUNC_RUN = {**RUNC_CREATE, "detach": "bool", "d": "bool", "keep": "bool", "no-subreaper": "bool"}
RUNC_GROUPS = [("bundle", "b"), ("help", "h"), ("detach", "d")]


def go_parse_bool(value: str) -> bool:
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise BadValue(value)


def go_parse_int(value: str) -> int:
    try:
        number = int(value, 0)  # close enough to strconv.ParseInt(s, 0, 64) for the values generated here
    except ValueError:
        raise BadValue(value) from None
    if value != value.strip():
        raise BadValue(value)
    return number


def go_flagset(defined: dict[str, str], args: list[str]) -> tuple[dict[str, object], list[str]]:
    """flag.FlagSet.Parse: the set flags (in a map per name, as Go keeps one variable per name) and the rest."""
    actual: dict[str, object] = {}
    while args:
        s = args[0]
        if len(s) < 2 or s[0] != "-":
            break
        minuses = 1
        if s[1] == "-":
            minuses += 1
            if len(s) == 2:
                args = args[1:]
                break
        name = s[minuses:]
        if not name or name[0] == "-" or name[0] == "=":
            raise Refused("bad flag syntax")
        args = args[1:]
        has_value, value = False, ""
        if "=" in name[1:]:
            cut = name.index("=", 1)
            name, value, has_value = name[:cut], name[cut + 1:], True
        if name not in defined:
            raise Refused("flag provided but not defined")
        if defined[name] == "bool":
            actual[name] = go_parse_bool(value) if has_value else True
            continue
        if not has_value:
            if not args:
                raise Refused("flag needs an argument")
            value, args = args[0], args[1:]
        actual[name] = go_parse_int(value) if defined[name] == "int" else value
    return actual, args


def urfave_normalize(groups: list[tuple[str, ...]], actual: dict[str, object]) -> None:
    for group in groups:
        set_names = [n for n in group if n in actual]
        if len(set_names) > 1:
            raise Refused("Cannot use two forms of the same flag")
        for n in group:
            if set_names:
                actual[n] = actual[set_names[0]]


def urfave_arg_is_flag(defined: dict[str, str], arg: str) -> bool:
    if arg in ("-", "--") or not arg.startswith("-"):
        return False
    if arg.startswith("--"):
        arg = arg.replace("-", "", 2)
    if arg.startswith("-"):
        arg = arg.replace("-", "", 1)
    return arg.split("=")[0] in defined


def urfave_reorder(defined: dict[str, str], args: list[str]) -> list[str]:
    remaining: list[str] = []
    reordered: list[str] = []
    next_may_be_value = False
    for i, arg in enumerate(args):
        if next_may_be_value and not urfave_arg_is_flag(defined, arg):
            next_may_be_value = False
            reordered.append(arg)
        elif arg == "--":
            remaining = ["--", *remaining, *args[i + 1:]]
            break
        elif urfave_arg_is_flag(defined, arg):
            reordered.append(arg)
            next_may_be_value = "=" not in arg
        else:
            remaining.append(arg)
    return reordered + remaining


def runc_model(argv: list[str]) -> tuple[str, str, str]:
    """(subcommand, id, bundle) of a create/run runc would carry out; raises Refused otherwise."""
    actual, args = go_flagset(RUNC_APP, argv)
    urfave_normalize(RUNC_APP_GROUPS, actual)
    if actual.get("help") or actual.get("version"):
        raise Refused("help")
    if not args or args[0] not in ("create", "run"):
        raise Refused("not a create")
    command = RUNC_CREATE if args[0] == "create" else RUNC_RUN
    actual, operands = go_flagset(command, urfave_reorder(command, args[1:]))
    urfave_normalize(RUNC_GROUPS, actual)
    if actual.get("help"):
        raise Refused("help")
    if len(operands) != 1 or operands[0] == "":
        raise Refused("requires exactly 1 argument")
    bundle = str(actual.get("bundle", ""))
    return args[0], operands[0], os.path.normpath(os.path.join(CWD, bundle)) if bundle else CWD


# ---------------------------------------------------------------- crun: argp in order, getopt_long

CRUN_GLOBAL = {"debug": 0, "cgroup-manager": 1, "systemd-cgroup": 0, "log": 1, "log-format": 1, "log-level": 1,
               "root": 1, "rootless": 1, "version": 0, "help": 0, "usage": 0, "program-name": 1, "HANG": 2}
CRUN_GLOBAL_SHORT = {"V": "version", "v": "version", "?": "help"}
CRUN_CREATE = {"bundle": 1, "config": 1, "console-socket": 1, "preserve-fds": 1, "no-pivot": 0, "pid-file": 1,
               "no-subreaper": 0, "no-new-keyring": 0, "help": 0, "usage": 0, "program-name": 1, "HANG": 2}
CRUN_RUN = {**CRUN_CREATE, "detach": 0}
CRUN_SHORT = {"b": "bundle", "f": "config", "?": "help"}
CRUN_RUN_SHORT = {**CRUN_SHORT, "d": "detach"}


def getopt_in_order(longs: dict[str, int], shorts: dict[str, str], args: list[str]) -> tuple[list[tuple], int]:
    """The options in order, as (long name, value), and the index of the first operand."""
    found: list[tuple] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return found, i + 1
        if len(arg) < 2 or arg[0] != "-":
            return found, i
        i += 1
        if arg.startswith("--"):
            body = arg[2:]
            name, has_value, value = body.partition("=")
            if name in longs:
                option = name
            else:
                candidates = [n for n in longs if n.startswith(name)]
                if len(candidates) != 1:
                    raise Refused("ambiguous or unrecognized option")
                option = candidates[0]
            if longs[option] == 0 and has_value:
                raise Refused("doesn't allow an argument")
            if longs[option] == 1 and not has_value:
                if i >= len(args):
                    raise Refused("requires an argument")
                value, i = args[i], i + 1
            found.append((option, value))
            continue
        j = 1
        while j < len(arg):
            c = arg[j]
            if c not in shorts:
                raise Refused("invalid option")
            option = shorts[c]
            if longs[option] == 1:
                value = arg[j + 1:]
                if not value:
                    if i >= len(args):
                        raise Refused("requires an argument")
                    value, i = args[i], i + 1
                found.append((option, value))
                break
            found.append((option, ""))
            j += 1
    return found, i


def crun_model(argv: list[str]) -> tuple[str, str, str, str]:
    options, first = getopt_in_order(CRUN_GLOBAL, CRUN_GLOBAL_SHORT, argv)
    if any(o in ("version", "help", "usage") for o, _ in options):
        raise Refused("help")
    if first >= len(argv) or argv[first] not in ("create", "run"):
        raise Refused("not a create")
    command, args = argv[first], argv[first + 1:]
    longs, shorts = (CRUN_CREATE, CRUN_SHORT) if command == "create" else (CRUN_RUN, CRUN_RUN_SHORT)
    options, first = getopt_in_order(longs, shorts, args)
    if any(o in ("help", "usage") for o, _ in options):
        raise Refused("help")
    if len(args) - first != 1:
        raise Refused("requires exactly one argument")
    bundle, config = None, "config.json"
    for option, value in options:
        if option == "bundle":
            bundle = value
        elif option == "config":
            config = value
    if bundle == "":
        raise Refused("realpath '' failed")
    bundle_dir = os.path.normpath(os.path.join(CWD, bundle)) if bundle is not None else CWD
    config_path = os.path.join(bundle_dir, config) if config == "config.json" else os.path.join(CWD, config)
    return command, args[first], bundle_dir, os.path.normpath(config_path)


# ---------------------------------------------------------------- generated command lines

VALUES = ["b1", "b2", "/abs/b3", "", "ID", "id2", "-", "--", "-x", "config.json", "other.json", "0", "0x1", "x"]
RUNC_TOKENS = [
    "--bundle", "-b", "-bundle", "--b", "---bundle", "--bundle=b1", "-b=b2", "--bundle=", "-b=",
    "--console-socket", "--console-socket=s", "--pid-file", "-pid-file=p", "--pidfd-socket", "--preserve-fds",
    "--preserve-fds=1", "--preserve-fds=x", "--no-pivot", "--no-pivot=false", "--no-pivot=true", "-no-pivot=x",
    "--no-new-keyring", "--detach", "-d", "-d=false", "--keep", "--no-subreaper", "--help", "-h", "--help=false",
    "-h=0", "--", "-", "--unknown", "-x=1", "-=x", "--=", "ID", "id2", "create", "run",
]
RUNC_GLOBAL_TOKENS = ["--root", "--root=/r", "-root", "/r", "--log", "/l", "--log-format=json", "--debug",
                      "--systemd-cgroup=false", "--criu", "--rootless", "auto", "--help=false", "-v", "--", "--x"]
CRUN_TOKENS = [
    "--bundle", "--bund", "--b", "-b", "-bb1", "-b/abs/b3", "--bundle=b2", "--bundle=", "--config", "--conf=other.json",
    "-f", "-fother.json", "-fconfig.json", "--console-socket", "--con", "--preserve-fds", "--pr", "--no-pivot",
    "--no", "--no-s", "--no-new", "--pid-file", "--pi=p", "-d", "--detach", "-db", "-bd", "--help", "-?",
    "--usage", "--program-name", "--", "-", "--unknown", "-x", "ID", "id2", "create", "run",
]
CRUN_GLOBAL_TOKENS = ["--root", "--root=/r", "--roo", "/r", "--log", "--log-f", "json", "--debug", "--cgroup-m",
                      "systemd", "--systemd-cgroup", "--rootless=true", "-V", "--", "--x"]


def command_lines(global_tokens: list[str], tokens: list[str]) -> st.SearchStrategy[list[str]]:
    globals_ = st.lists(st.sampled_from(global_tokens + VALUES[:3]), max_size=3)
    rest = st.lists(st.sampled_from(tokens + VALUES), max_size=7)
    subcommand = st.sampled_from(["create", "run", "create", "run", "state", "--", "-b"])
    return st.builds(lambda g, s, r: [*g, s, *r], globals_, subcommand, rest)


def syscage_reads(argv: list[str], flavour: str) -> tuple[str, str, str, str] | None:
    sub, index, _ = parse_global(argv, flavour)
    if sub not in ("create", "run"):
        return None
    call = parse_create(argv, index, flavour, CWD)
    return (sub, call.container_id, call.bundle, call.config) if call else None


def check(argv: list[str], flavour: str) -> None:
    try:
        expected: tuple[str, ...] | None = (runc_model if flavour == "runc" else crun_model)(argv)
        lenient = False
    except BadValue:
        expected, lenient = None, True
    except Refused:
        expected, lenient = None, False
    try:
        got = syscage_reads(argv, flavour)
    except Unparsable:
        assert expected is None, f"{argv}: the runtime creates {expected}, syscage refuses"
        return
    if expected is not None:
        assert got is not None and got[:3] == expected[:3], f"{argv}: runtime {expected}, syscage {got}"
        if flavour == "crun":
            assert got[3] == expected[3]
        else:
            assert got[3] == os.path.join(got[2], "config.json")
    elif not lenient:
        assert got is None, f"{argv}: the runtime refuses, syscage reads {got}"


@MANY
@given(command_lines(RUNC_GLOBAL_TOKENS, RUNC_TOKENS))
def test_syscage_runtime_reads_runc_command_lines_as_runc_does(argv: list[str]) -> None:
    check(argv, "runc")


@MANY
@given(command_lines(CRUN_GLOBAL_TOKENS, CRUN_TOKENS))
def test_syscage_runtime_reads_crun_command_lines_as_crun_does(argv: list[str]) -> None:
    check(argv, "crun")


@MANY
@given(st.lists(st.text(max_size=12), max_size=10), st.sampled_from(["runc", "crun"]))
def test_any_command_line_is_read_or_refused_cleanly(argv: list[str], flavour: str) -> None:
    try:
        syscage_reads(argv, flavour)
    except Unparsable as exc:
        assert "\n" not in str(exc)
