"""The C launcher in front of syscage-runtime's Python wrapper (shim/launcher.c): it execs the real runtime only
when the Python wrapper would have done nothing but that, and hands every other call to Python unchanged.

The launcher is built here with its config cache in a temporary directory; beside it, a stand-in for the Python
entry, and stand-ins for runc and crun, each recording how it was called. The cache is written by the real Python
code (syscage.shim.fastconfig), so the two agree on its format."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syscage import configcache
from syscage.markers import marker_path
from syscage.shim import fastconfig, runtime
from syscage.shim.argv import Unparsable, find_operand, parse_create, parse_global
from syscage.shim.launcher_build import build
from tests.test_properties_argv import CRUN_GLOBAL_TOKENS, CRUN_TOKENS, RUNC_GLOBAL_TOKENS, RUNC_TOKENS, VALUES

RECORDER = """#!/bin/sh
{{ echo {who}; echo "$0"; echo "${{SYSCAGE_RUNTIME_WRAPPED:-unset}}"; for a in "$@"; do printf '%s\\0' "$a"; done; }} \
> "$LAUNCH_OUT"
exit {code}
"""
ANNOTATED = {"io.syscage.mode": "enforce", "io.syscage.profile": "p"}
# Every subcommand of runc 1.1 and crun 1.8 but create, run and delete: always straight to the runtime.
OTHER_SUBCOMMANDS = ["start", "state", "kill", "exec", "pause", "resume", "ps", "events", "update", "list", "spec",
                     "features", "checkpoint", "restore", "init", "help", "mounts", "delete-", "Create", "RUN"]


@dataclass
class Call:
    who: str  # "python" or "runtime"
    argv0: str
    wrapped: str  # SYSCAGE_RUNTIME_WRAPPED as the callee saw it
    args: list[str]
    code: int
    stdout: str
    stderr: str


@dataclass
class World:
    root: Path
    launcher: Path
    config: Path
    cache: Path
    work: Path  # the working directory: a bundle itself, with bundles b1, b2, b3 and a spec other.json in it
    run_dir: Path
    runtimes: dict[str, Path]

    def use(self, flavour: str, monkeypatch: pytest.MonkeyPatch | None = None) -> None:
        """Point the config at the runc or crun stand-in and write its cache as syscage-runtime-py would."""
        self.config.write_text(f'[runtime]\npath = "{self.runtimes[flavour]}"\n[paths]\nrun_dir = "{self.run_dir}"\n')
        original = configcache.CACHE_DIR
        configcache.CACHE_DIR = str(self.cache)
        os.environ["SYSCAGE_CONFIG"] = str(self.config)
        try:
            assert fastconfig.read_keys()[("runtime", "path")] == str(self.runtimes[flavour])
        finally:
            configcache.CACHE_DIR = original
            del os.environ["SYSCAGE_CONFIG"]

    def call(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Call:
        out = self.root / "out"
        out.unlink(missing_ok=True)
        done = subprocess.run([str(self.launcher), *args], cwd=cwd or self.work, capture_output=True, text=True,
                              timeout=30, check=False, stdin=subprocess.DEVNULL,
                              env={"PATH": "/usr/bin:/bin", "SYSCAGE_CONFIG": str(self.config), "LAUNCH_OUT": str(out),
                                   **(env or {})})
        if not out.exists():
            return Call("nobody", "", "", [], done.returncode, done.stdout, done.stderr)
        who, argv0, wrapped, rest = out.read_bytes().split(b"\n", 3)
        return Call(who.decode(), argv0.decode(), wrapped.decode(), [a.decode() for a in rest.split(b"\0")[:-1]],
                    done.returncode, done.stdout, done.stderr)

    def tag(self, where: Path, annotations: dict[str, str] | None = None) -> Path:
        """Write a spec at `where` (a bundle directory or a spec file), annotated as given."""
        path = where / "config.json" if where.is_dir() else where
        path.write_text(json.dumps({"ociVersion": "1.0.2", "process": {"args": ["true"]},
                                    "annotations": annotations or {}}))
        return path

    def untag_all(self) -> None:
        for where in (self.work, self.work / "b1", self.work / "b2", self.work / "b3", self.work / "other.json"):
            self.tag(where)
        for marker in (self.run_dir / "learning").glob("*/*"):
            marker.unlink()

    def mark(self, root: str | None, container_id: str) -> Path:
        path = Path(marker_path(str(self.run_dir), root, container_id) or "")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
        return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("launcher")
    cache = root / "cache"
    cache.mkdir(mode=0o700)
    launcher = build("syscage-runtime", root / "bin" / "syscage-runtime",
                     ("-Werror", f'-DCACHE_DIR="{cache}"'))
    python_entry = root / "bin" / "syscage-runtime-py"
    python_entry.write_text(RECORDER.format(who="python", code=0))
    python_entry.chmod(0o755)
    runtimes = {}
    for flavour in ("runc", "crun"):
        runtimes[flavour] = root / "rt" / flavour
        runtimes[flavour].parent.mkdir(exist_ok=True)
        runtimes[flavour].write_text(RECORDER.format(who="runtime", code=3))
        runtimes[flavour].chmod(0o755)
    work = root / "work"
    for name in ("b1", "b2", "b3"):
        (work / name).mkdir(parents=True)
    w = World(root, launcher, root / "config.toml", cache, work, root / "run", runtimes)
    w.untag_all()
    w.use("runc")
    yield w


@pytest.fixture
def rw(world: World) -> Iterator[World]:
    """The world with runc, nothing tagged and no markers; left that way."""
    world.use("runc")
    world.untag_all()
    yield world
    world.use("runc")
    world.untag_all()


def test_passthrough_is_an_exec_of_the_runtime_with_the_same_arguments(rw: World) -> None:
    args = ["--root", "/r", "--log", "/l", "--log-format", "json", "state", "--", "a b", "", "é"]
    got = rw.call(*args)
    assert (got.who, got.argv0, got.wrapped, got.args) == ("runtime", str(rw.runtimes["runc"]), "1", args)
    assert (got.code, got.stdout, got.stderr) == (3, "", "")  # the runtime's own exit code; nothing of ours


@pytest.mark.parametrize("sub", OTHER_SUBCOMMANDS)
def test_other_subcommands_go_straight_to_the_runtime_even_for_an_annotated_bundle(rw: World, sub: str) -> None:
    """runtime.py does no work for them either: only create, run and delete can need syscage."""
    rw.tag(rw.work, ANNOTATED)
    rw.tag(rw.work / "b1", ANNOTATED)
    rw.mark(None, "ID")
    assert rw.call(sub, "--bundle", "b1", "ID").who == "runtime"


# Every form of naming the bundle runc accepts (urfave/cli over Go's flag package: one or two dashes, `=` or the
# next argument, before or after the id, repeated: the last one wins, or none: the working directory), with the
# global options containerd gives. B is the annotated bundle, A another one.
RUNC_ORDERS = [
    ["{sub}", "--bundle", "B", "ID"], ["{sub}", "-b", "B", "ID"], ["{sub}", "--bundle=B", "ID"],
    ["{sub}", "-b=B", "ID"], ["{sub}", "-bundle", "B", "ID"], ["{sub}", "--b", "B", "ID"],
    ["{sub}", "-bundle=B", "ID"], ["{sub}", "ID", "--bundle", "B"], ["{sub}", "ID", "-b", "B"],
    ["{sub}", "ID", "--bundle=B"], ["{sub}", "-b", "A", "ID", "-b", "B"], ["{sub}", "--bundle", "A", "ID", "-b=B"],
    ["{sub}", "--pid-file", "P", "--console-socket", "S", "--no-pivot", "--bundle", "B", "ID"],
    ["{sub}", "--no-new-keyring", "ID", "--pid-file=P", "--bundle", "B", "--preserve-fds", "2"],
    ["--root", "/r", "--log", "L", "--log-format", "json", "{sub}", "--bundle", "B", "--pid-file", "P", "ID"],
    ["--root=/r", "--debug", "--systemd-cgroup", "{sub}", "ID", "--bundle=B"],
    ["-root", "/r", "-log=L", "--criu", "criu", "--rootless", "auto", "{sub}", "-b", "B", "ID"],
    ["{sub}", "--", "ID"], ["{sub}", "ID"], ["{sub}", "--bundle", "", "ID"], ["{sub}", "-b=", "ID"],
    ["{sub}", "--unknown-option", "--bundle", "B", "ID"], ["{sub}", "-b", "B", "--future=1", "ID"],
]
RUNC_RUN_ONLY = [["run", "--detach", "-b", "B", "ID"], ["run", "-d", "ID", "--bundle", "B"],
                 ["run", "--keep", "--no-subreaper", "--bundle=B", "ID"]]
# crun (argp): options before the id only, unique prefixes, -bDIR, the spec file named by --config/-f.
CRUN_ORDERS = [
    ["{sub}", "--bundle", "B", "ID"], ["{sub}", "-b", "B", "ID"], ["{sub}", "-bB", "ID"], ["{sub}", "--bund=B", "ID"],
    ["{sub}", "--b", "B", "ID"], ["{sub}", "--bundle=B", "ID"], ["{sub}", "-b", "A", "-b", "B", "ID"],
    ["{sub}", "--config", "F", "ID"], ["{sub}", "-fF", "ID"], ["{sub}", "--conf=F", "-b", "A", "ID"],
    ["--root", "/r", "--log", "L", "--log-format", "json", "{sub}", "--bundle", "B", "--pid-file", "P", "ID"],
    ["--root=/r", "--cgroup-m", "systemd", "--systemd-cgroup", "--debug", "{sub}", "-b", "B", "ID"],
    ["{sub}", "--no-pivot", "--no-new", "--pi=P", "--con", "S", "-b", "B", "ID"], ["{sub}", "ID"],
    ["{sub}", "--", "ID"], ["{sub}", "--unknown", "-b", "B", "ID"],
]
CRUN_RUN_ONLY = [["run", "-db", "B", "ID"], ["run", "-dbB", "ID"], ["run", "--detach", "--bundle", "B", "ID"]]


def _orders(orders: list[list[str]], run_only: list[list[str]]) -> list[list[str]]:
    return [[t.replace("{sub}", sub) for t in order] for sub in ("create", "run") for order in orders] + run_only


def _fill(world: World, template: list[str]) -> tuple[list[str], Path]:
    """The command line, and the spec the runtime would read (the working directory's without a bundle)."""
    spec = world.work / "other.json" if "F" in template or "-fF" in template or "--conf=F" in template else None
    named = any("B" in t for t in template)
    args = [t.replace("--bund=B", "--bund=b2").replace("B", "b2").replace("A", "b1").replace("-fF", "-fother.json")
            .replace("--conf=F", "--conf=other.json") for t in template]
    args = ["other.json" if a == "F" else "/r" if a == "/r" else a for a in args]
    return args, spec or (world.work / "b2" / "config.json" if named else world.work / "config.json")


@pytest.mark.parametrize("template", _orders(RUNC_ORDERS, RUNC_RUN_ONLY), ids=" ".join)
def test_runc_create_and_run_of_an_annotated_spec_go_to_python_whatever_the_argument_order(
        rw: World, template: list[str]) -> None:
    args, spec = _fill(rw, template)
    assert rw.call(*args).who == "runtime"  # nothing annotated: straight to runc
    rw.tag(spec, ANNOTATED)
    got = rw.call(*args)
    assert (got.who, got.args, got.wrapped) == ("python", args, "unset")


@pytest.mark.parametrize("template", _orders(CRUN_ORDERS, CRUN_RUN_ONLY), ids=" ".join)
def test_crun_create_and_run_of_an_annotated_spec_go_to_python_whatever_the_argument_order(
        rw: World, template: list[str]) -> None:
    rw.use("crun")
    args, spec = _fill(rw, template)
    assert rw.call(*args).who == "runtime"
    rw.tag(spec, ANNOTATED)
    got = rw.call(*args)
    assert (got.who, got.args) == ("python", args)


@pytest.mark.parametrize("tag", runtime.SLOW_PATH_TAGS)
def test_every_tag_the_python_wrapper_acts_on_sends_a_create_to_python(rw: World, tag: bytes) -> None:
    """Hooks an earlier learning run wrote into a reused bundle must go even when syscage is off now."""
    (rw.work / "b1" / "config.json").write_bytes(b'{"ociVersion": "1.0.2", "x": ["' + tag + b'"]}')
    assert rw.call("create", "--bundle", "b1", "ID").who == "python"


def test_any_io_syscage_key_sends_a_create_to_python(rw: World) -> None:
    rw.tag(rw.work / "b1", {"io.syscage.profile": "p"})
    assert rw.call("create", "-b", "b1", "ID").who == "python"


def test_a_bundle_reached_through_a_symbolic_link_or_a_relative_path(rw: World) -> None:
    rw.tag(rw.work / "b3", ANNOTATED)
    (rw.root / "link").symlink_to(rw.work / "b3")
    try:
        assert rw.call("create", "--bundle", str(rw.root / "link"), "ID").who == "python"
        assert rw.call("create", "--bundle", "../b3", "ID", cwd=rw.work / "b1").who == "python"
        assert rw.call("create", "ID", cwd=rw.work / "b3").who == "python"
    finally:
        (rw.root / "link").unlink()


def test_a_spec_it_cannot_read_as_a_file_goes_to_python(rw: World) -> None:
    """A FIFO or a directory where config.json should be: Python reads it as the runtime would (no hang here)."""
    spec = rw.work / "b1" / "config.json"
    spec.unlink()
    os.mkfifo(spec)
    try:
        assert rw.call("create", "-b", "b1", "ID").who == "python"
    finally:
        spec.unlink()
        rw.tag(rw.work / "b1")
    assert rw.call("create", "-b", "b1", "ID").who == "runtime"


def test_containerds_own_lines_go_straight_to_runc(rw: World, tmp_path: Path) -> None:
    """What containerd's runc shim runs for an unannotated container: create (with a console socket and its log
    file), start, state, kill, delete. None of them starts Python."""
    log = tmp_path / "log.json"
    log.write_text('{"level":"info","msg":"x"}\n')
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "pty.sock"))
    try:
        globals_ = ["--root", "/run/containerd/runc/default", "--log", str(log), "--log-format", "json"]
        lines = [[*globals_, "create", "--bundle", str(rw.work / "b1"), "--pid-file", str(tmp_path / "init.pid"),
                  "--console-socket", str(tmp_path / "pty.sock"), "ctr-1"],
                 [*globals_, "start", "ctr-1"], [*globals_, "state", "ctr-1"], [*globals_, "kill", "ctr-1", "9"],
                 [*globals_, "delete", "ctr-1"], [*globals_, "delete", "--force", "ctr-1"]]
        for line in lines:
            assert rw.call(*line, cwd=rw.work / "b1").who == "runtime", line
    finally:
        sock.close()


@pytest.mark.parametrize("flavour", ["runc", "crun"])
@pytest.mark.parametrize(("root", "args"), [
    (None, ["delete", "ID"]), (None, ["delete", "--force", "ID"]), (None, ["delete", "-f", "ID"]),
    (None, ["delete", "--", "ID"]), (None, ["delete", "ID", "--force"]), ("/r", ["--root", "/r", "delete", "ID"]),
    ("/r", ["--root=/r", "delete", "-f", "ID"]), ("/r", ["--root", "/x", "--root", "/r", "delete", "ID"]),
])
def test_delete_of_a_container_created_learning_goes_to_python(rw: World, flavour: str, root: str | None,
                                                               args: list[str]) -> None:
    rw.use(flavour)
    assert rw.call(*args).who == "runtime"
    marker = rw.mark(root, "ID")
    assert rw.call(*args).who == "python"
    other = ["--root", "/elsewhere", *args] if root is None else [a.replace("/r", "/y") for a in args]
    assert rw.call(*other).who == "runtime"  # markers are per runtime root
    marker.unlink()


@pytest.mark.parametrize("sub", ["create", "run"])
def test_create_or_run_over_a_stale_marker_goes_to_python(rw: World, sub: str) -> None:
    """Python clears a marker an earlier container of this id left (a crash), else its delete would record."""
    rw.mark("/r", "ID")
    assert rw.call("--root", "/r", sub, "--bundle", "b1", "ID").who == "python"
    assert rw.call("--root", "/r", sub, "--bundle", "b1", "ID2").who == "runtime"


@pytest.mark.parametrize("args", [
    ["--help"], ["-h"], ["--version"], ["-v"], ["--help=false", "state", "x"], ["--", "state", "x"],
    ["--unknown", "state"], ["-=x", "state"], ["--root"], [], ["--log", "/l"], ["---root", "x", "state"],
])
def test_global_lines_it_does_not_read_go_to_python(rw: World, args: list[str]) -> None:
    assert rw.call(*args).who == "python"


@pytest.mark.parametrize("args", [["--ro", "/r", "state"], ["--l", "x", "state"], ["-V"], ["--debug=1", "state"],
                                  ["--HANG", "state"], ["--ver"], ["--", "state"], ["-x", "state"]])
def test_crun_global_lines_it_does_not_read_go_to_python(rw: World, args: list[str]) -> None:
    rw.use("crun")
    assert rw.call(*args).who == "python"


def test_crun_global_abbreviations_are_read(rw: World) -> None:
    rw.use("crun")
    rw.mark("/r", "ID")
    assert rw.call("--root=/r", "--log-f", "json", "--cgroup", "cgroupfs", "--d", "delete", "ID").who == "python"
    assert rw.call("--root", "/x", "--log-l", "debug", "--s", "--cgroup-m", "x", "--d", "delete", "ID").who == "runtime"
    assert rw.call("--roo", "/r", "delete", "ID").who == "python"  # root or rootless: crun refuses, Python says so


def test_config_cache_it_cannot_trust_goes_to_python(rw: World) -> None:
    (cache,) = rw.cache.iterdir()
    assert rw.call("state", "x").who == "runtime"
    rw.config.write_text(rw.config.read_text() + "# edited\n")  # the cache holds the old text: stale
    assert rw.call("state", "x").who == "python"
    rw.use("runc")
    cache.chmod(0o620)  # writable by its group: whoever can write it picks the binary we exec
    assert rw.call("state", "x").who == "python"
    cache.chmod(0o600)
    saved = cache.read_bytes()
    for broken in (saved[:-1], saved + b"/x\n", saved.replace(b"\n/", b"\nx", 1), b"x" + saved, b""):
        cache.write_bytes(broken)
        assert rw.call("state", "x").who == "python", broken
    cache.unlink()
    (rw.cache / "elsewhere").write_bytes(saved)
    cache.symlink_to(rw.cache / "elsewhere")  # never followed
    assert rw.call("state", "x").who == "python"
    cache.unlink()
    (rw.cache / "elsewhere").unlink()
    assert rw.call("state", "x").who == "python"  # no cache at all
    rw.use("runc")
    assert rw.call("state", "x").who == "runtime"


def test_without_a_config_file_the_defaults_apply(rw: World) -> None:
    """As fastconfig: no config file means /usr/sbin/runc and /run/syscage, no Python."""
    got = rw.call("--root", str(rw.root / "no-such-root"), "list", env={"SYSCAGE_CONFIG": str(rw.root / "missing")})
    assert got.who == "nobody"  # neither stand-in: the real runc ran (or could not be started: exit 127)
    assert got.code in (0, 127) and (got.code == 0 or "cannot run the real runtime /usr/sbin/runc" in got.stderr)


def test_the_loop_guard_goes_to_python(rw: World) -> None:
    assert rw.call("state", "x", env={"SYSCAGE_RUNTIME_WRAPPED": "1"}).who == "python"


def test_a_runtime_that_cannot_be_run_is_one_line_and_127(rw: World) -> None:
    rw.config.write_text(f'[runtime]\npath = "{rw.root / "nothing"}"\n[paths]\nrun_dir = "{rw.run_dir}"\n')
    configcache.CACHE_DIR, before = str(rw.cache), configcache.CACHE_DIR
    os.environ["SYSCAGE_CONFIG"] = str(rw.config)
    try:
        fastconfig.read_keys()
    finally:
        configcache.CACHE_DIR = before
        del os.environ["SYSCAGE_CONFIG"]
    got = rw.call("state", "x")
    assert (got.who, got.code, got.stdout) == ("nobody", 127, "")
    assert got.stderr == (f"syscage-runtime: error: cannot run the real runtime {rw.root / 'nothing'}: No such file "
                          "or directory; set runtime.path in the syscage config\n")


def test_a_missing_python_entry_fails_closed(world: World, tmp_path: Path) -> None:
    lone = tmp_path / "syscage-runtime"
    lone.write_bytes(world.launcher.read_bytes())
    lone.chmod(0o755)
    done = subprocess.run([str(lone), "--version"], capture_output=True, text=True, timeout=30, check=False,
                          env={"SYSCAGE_CONFIG": str(world.config)})
    assert done.returncode == 1 and done.stdout == "" and len(done.stderr.splitlines()) == 1
    assert "syscage-runtime-py" in done.stderr


# ---------------------------------------------------------------- generated command lines, Python as the oracle


def python_has_work(argv: list[str], flavour: str, world: World) -> bool:
    """Whether syscage/shim/runtime.py's main would do anything but exec the runtime for this line (with the
    working directory world.work): refuse it, prepare a spec, clear a stale marker or record a run."""
    run_dir = str(world.run_dir)
    try:
        sub, index, options = parse_global(argv, flavour)
        call = parse_create(argv, index, flavour, str(world.work)) if sub in ("create", "run") else None
    except Unparsable:
        cwd = os.getcwd()
        os.chdir(world.work)
        try:
            candidates = runtime._candidate_specs(argv)
            return bool({"create", "run"} & set(argv)) and any(runtime._tagged(p) for p in candidates)
        finally:
            os.chdir(cwd)
    if call is not None:
        marker = marker_path(run_dir, options.get("root"), call.container_id)
        return bool(marker and os.path.exists(marker)) or runtime._tagged(call.config)
    if sub == "delete":
        marker = marker_path(run_dir, options.get("root"), find_operand(argv, index))
        return bool(marker and os.path.exists(marker))
    return False


WHERE = {"cwd": "", "b1": "b1", "b2": "b2", "b3": "b3", "other.json": "other.json"}


def generated(flavour: str) -> st.SearchStrategy[list[str]]:
    """Random tokens (mostly lines the runtime refuses), and lines shaped as runtimes are called: global options,
    then create or run with the bundle named in any accepted form and order, or delete."""
    runc = flavour == "runc"
    global_tokens, tokens = (RUNC_GLOBAL_TOKENS, RUNC_TOKENS) if runc else (CRUN_GLOBAL_TOKENS, CRUN_TOKENS)
    values = [*VALUES, "/r"]
    random = st.builds(lambda g, s, r: [*g, s, *r],
                       st.lists(st.sampled_from([*global_tokens, *values[:3]]), max_size=3),
                       st.sampled_from(["create", "run", "delete", "state", "--", "-b"]),
                       st.lists(st.sampled_from([*tokens, *values, "delete", "-f", "--force"]), max_size=7))
    globals_ = st.sampled_from([[], ["--root", "/r"], ["--root=/r"], ["--log", "/l", "--log-format", "json"],
                                ["--debug"], ["--root", "/x", "--root", "/r"]])
    forms = st.lists(st.sampled_from(BUNDLE_FORMS[flavour]), max_size=2)
    ids = st.sampled_from([["ID"], ["id2"], ["--", "ID"], ["-x"]])

    def shaped(g: list[str], sub: str, options: list[list[str]], cid: list[str], where: int, force: bool) -> list[str]:
        if sub == "delete":
            return [*g, sub, *(["--force"] if force else []), *cid]
        rest = [t for option in options for t in option]
        where = len(rest) if flavour == "crun" or "--" in cid else where % (len(rest) + 1)
        return [*g, sub, *rest[:where], *cid, *rest[where:]]

    return st.one_of(random, st.builds(shaped, globals_, st.sampled_from(["create", "run", "delete"]), forms, ids,
                                       st.integers(0, 5), st.booleans()))


BUNDLE_FORMS = {"runc": [["-b", "b1"], ["--bundle=b2"], ["-bundle", "/abs/b3"], ["--b", "b1"], ["-b=b2"],
                         ["--bundle", ""], ["--pid-file", "p"], ["--detach"]],
                "crun": [["-b", "b1"], ["-bb2"], ["--bund=b1"], ["--b", "/abs/b3"], ["--bundle", "b2"],
                         ["-fother.json"], ["--config", "other.json", "-b", "b2"], ["--pid-file=p"]]}


@pytest.mark.parametrize("flavour", ["runc", "crun"])
def test_the_launcher_never_skips_what_the_python_wrapper_would_act_on(world: World, flavour: str) -> None:
    """For generated command lines over annotated and plain bundles and learning markers: whenever the Python
    wrapper would do anything but exec the runtime, the launcher hands the line to Python, unchanged. Not vacuous:
    both outcomes occur many times."""
    world.use(flavour)
    tally = {"python": 0, "runtime": 0, "work": 0}

    @settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
    @given(generated(flavour), st.sets(st.sampled_from(sorted(WHERE))), st.sets(st.sampled_from(["ID", "id2", "-x"])),
           st.sampled_from([None, "/r"]))
    def check(argv: list[str], tagged: set[str], marked: set[str], marker_root: str | None) -> None:
        world.untag_all()
        for where in tagged:
            world.tag(world.work / WHERE[where], ANNOTATED)
        for name in marked:
            world.mark(marker_root, name)
        argv = [a.replace("/abs/b3", str(world.work / "b3")) for a in argv]
        got = world.call(*argv)
        assert got.who in ("python", "runtime"), got
        assert got.args == argv
        tally[got.who] += 1
        if python_has_work(argv, flavour, world):
            tally["work"] += 1
            assert got.who == "python", f"{flavour} {argv}: tagged {tagged}, markers {marked} under {marker_root}"

    try:
        check()
    finally:
        world.untag_all()
        world.use("runc")
    assert min(tally.values()) >= 100, tally
