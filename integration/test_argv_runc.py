"""syscage-runtime and the real runtimes agree on the container id and bundle for every generated command
line: each line is run through real `runc create` (and `crun create`), and what the runtime actually
created (its `list`) is compared with what syscage-runtime reads from the same line."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integration.env import VENV_BIN, Env
from syscage.bundle import write_bundle
from syscage.shim.argv import Unparsable, parse_create, parse_global
from tests.test_properties_argv import CRUN_TOKENS, RUNC_TOKENS, VALUES, BadValue, Refused, crun_model, runc_model

WRAPPER = str(VENV_BIN / "syscage-runtime")
RUNTIMES = {"runc": "/usr/sbin/runc", "crun": "/usr/bin/crun"}
# Global options that keep the state root ours (no --root) and never hang (no --HANG).
GLOBAL_TOKENS = {"runc": ["--debug", "--log-format=json", "--systemd-cgroup=false", "--help=false", "-v", "--",
                          "--x", "--criu=criu"],
                 "crun": ["--debug", "--log-format=json", "--cgroup-m", "cgroupfs", "-V", "--", "--x"]}
FEW = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def workdir(env: Env) -> Iterator[Path]:
    """Bundles b1, b2, b3 (b3 named by absolute path) and the directory itself, and a spec other.json for
    crun's --config."""
    work = env.root / "argv"
    for name in ("b1", "b2", "b3"):
        write_bundle(work / name, env.rootfs, ["true"])
    spec = json.loads((work / "b1" / "config.json").read_text())
    spec["root"]["path"] = str(env.rootfs)
    (work / "other.json").write_text(json.dumps(spec))
    (work / "config.json").write_text(json.dumps(spec))  # the working directory is a bundle too
    yield work
    shutil.rmtree(work, ignore_errors=True)


BUNDLE_FORMS = {"runc": [["-b", "b1"], ["--bundle=b2"], ["-bundle", "B3"], ["--b", "b1"], ["-b=b2"], ["--bundle", ""]],
                "crun": [["-b", "b1"], ["-bb2"], ["--bund=b1"], ["--b", "B3"], ["--bundle", "b2"], ["-fother.json"],
                         ["--config", "other.json", "-b", "b2"]]}


def lines(flavour: str, work: Path) -> st.SearchStrategy[list[str]]:
    """`create` lines that often work: an id and bundle options in any order, among random other tokens."""
    tokens = [t for t in (RUNC_TOKENS if flavour == "runc" else CRUN_TOKENS) if t not in ("run", "-d", "--detach")]
    absolute = str(work / "b3")
    noise = st.one_of(st.just([]), st.lists(st.sampled_from([*tokens, *[absolute if v == "/abs/b3" else v
                                                                         for v in VALUES]]), max_size=3))
    bundles = st.lists(st.sampled_from(BUNDLE_FORMS[flavour]), max_size=2)
    ids = st.one_of(st.just(["ID"]), st.just(["--", "id2"]),
                    st.lists(st.sampled_from(["ID", "id2", "--", "-"]), min_size=1, max_size=2))

    def assemble(globals_: list[str], options: list[list[str]], extra: list[str], operands: list[str],
                 where: int) -> list[str]:
        rest = [t.replace("B3", absolute) for option in options for t in option] + extra
        where = len(rest) if where > 5 else where % (len(rest) + 1)  # crun wants its options first
        return [*globals_, "create", *rest[:where], *operands, *rest[where:]]

    return st.builds(assemble, st.lists(st.sampled_from(GLOBAL_TOKENS[flavour]), max_size=2), bundles, noise, ids,
                     st.integers(0, 10))


def created(flavour: str, root: Path) -> list[tuple[str, str]]:
    listed = subprocess.run([RUNTIMES[flavour], "--root", str(root), "list", "--format", "json"],
                            capture_output=True, text=True, check=True, timeout=30).stdout
    containers = json.loads(listed or "[]") or []
    for c in containers:
        subprocess.run([RUNTIMES[flavour], "--root", str(root), "delete", "--force", "--", c["id"]],
                       capture_output=True, timeout=30, check=False)
    return [(c["id"], c["bundle"]) for c in containers]


def agree(flavour: str, argv: list[str], work: Path, root: Path, tally: dict[str, int]) -> None:
    # No pipes: a created container holds its stdio open until it exits.
    subprocess.run([RUNTIMES[flavour], "--root", str(root), *argv], cwd=work, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30, check=False)
    actual = created(flavour, root)
    try:
        sub, index, _ = parse_global(argv, flavour)
        call = parse_create(argv, index, flavour, str(work)) if sub == "create" else None
        read = (call.container_id, call.bundle) if call else None
    except Unparsable:
        read = "refused"
    if actual:
        tally["created"] += 1
        assert [read] == actual, f"{flavour} {argv}: the runtime created {actual}, syscage-runtime reads {read}"
        return
    try:
        (runc_model if flavour == "runc" else crun_model)(argv)
    except BadValue:
        return  # refused for a value syscage-runtime does not check: nothing was created
    except Refused:
        assert read in (None, "refused"), f"{flavour} {argv}: the runtime refused it, syscage-runtime reads {read}"


@pytest.mark.parametrize("flavour", ["runc", "crun"])
def test_syscage_runtime_and_the_runtime_agree_on_bundle_and_id(env: Env, workdir: Path, flavour: str) -> None:
    root = env.root / f"argv-{flavour}-state"
    tally = {"created": 0, "lines": 0}

    @FEW
    @given(lines(flavour, workdir))
    def check(argv: list[str]) -> None:
        tally["lines"] += 1
        agree(flavour, argv, workdir, root, tally)

    check()
    print(f"{flavour}: {tally['lines']} command lines, {tally['created']} created a container")
    # Not vacuous: a good part of the generated lines really created a container.
    assert tally["created"] >= 20, tally


def test_options_after_the_id_are_enforced(env: Env) -> None:
    """`create ID --bundle B`: runc takes the bundle after the id; syscage-runtime must see it too (it
    ran the container unchecked): enforcing a profile that does not exist refuses the container."""
    bundle = env.bundle(["true"], learn=False, seccomp=None,
                        annotations={"io.syscage.mode": "enforce", "io.syscage.profile": env.name("missing")})
    cid = env.name("c")
    with tempfile.TemporaryFile("w+") as err:
        result = subprocess.run([WRAPPER, "--root", str(env.runc_root), "create", cid, "--bundle", str(bundle)],
                                cwd=env.root, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                timeout=60, check=False)
        err.seek(0)
        stderr = err.read()
    listed = env.runc("list", "-q").stdout.split()
    if cid in listed:
        env.runc("delete", "--force", cid)
    assert result.returncode != 0 and cid not in listed
    assert len(stderr.strip().splitlines()) == 1 and "missing" in stderr, stderr
