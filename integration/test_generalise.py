"""Coverage that holds up: real Debian programs learned with one workload and enforced with another of the same
kind (real runc, real eBPF), and the recall of the static set against what learning saw.

Programs (Debian's own binaries from this host, with the libraries they load, in a busybox rootfs): tar
(dynamically linked, glibc), gzip, sqlite3, busybox (static), a C program built here with gcc -static and a Go
program built here with Debian's Go (static, Go's own syscall layer). The static set comes from learning alone:
the tracer analyses what each run exec'd (no `syscage static`). The figures (allowed-syscall counts per coverage
and Docker's default, recall, analysis time and caching) are written to FIGURES and printed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from integration.env import Env, analysed, write_config
from integration.test_wrapper_runc import WRAPPER
from syscage.coverage import additions
from syscage.dockerdefault import ALLOWED as DOCKER_ALLOWED
from syscage.syscalls import syscall_number

SYSCAGE = str(Path(WRAPPER).parent / "syscage")
FIGURES = Path(os.environ.get("SYSCAGE_FIGURES", "/tmp/syscage-generalise.json"))
HOST_PROGRAMS = ("/usr/bin/tar", "/usr/bin/gzip", "/usr/bin/sqlite3")
PROBE = Path(__file__).parent.parent / "tests" / "fixtures" / "static_probe.c"
GOPROBE = Path(__file__).parent / "programs" / "goprobe.go"
COVERAGES = ("learned", "learned+related", "learned+static")

# program -> (the learning workload, the other workload of the same kind enforced afterwards, its expected stdout)
# Each {n} is replaced by a fresh number, so runs never meet each other's files.
WORKLOADS: dict[str, tuple[list[str], list[str], str]] = {
    "tar": (["/usr/bin/tar", "-cf", "/data/out/c{n}.tar", "-C", "/data/tree", "."],  # create
            ["/usr/bin/tar", "-xpf", "/data/links.tar", "-C", "/data/x{n}"], ""),  # extract, with links
    "gzip": (["/usr/bin/gzip", "-c", "/data/big"],  # compress to stdout
             ["/usr/bin/gzip", "-kf", "/data/gz{n}/f"], ""),  # compress a file in place, keeping owner, mode, times
    "sqlite3": (["/usr/bin/sqlite3", "/data/db/l{n}.db", "create table t(x); insert into t values(1);"],
                ["/usr/bin/sqlite3", "/data/db/w{n}.db", "pragma journal_mode=wal; create table t(x);"
                 " insert into t values(2); select count(*) from t;"], "wal\n1\n"),  # write-ahead journal
}


def _copy_with_libs(rootfs: Path, program: str) -> None:
    out = subprocess.run(["ldd", program], capture_output=True, text=True, check=True).stdout
    paths = [program] + [p for line in out.splitlines() for p in line.split() if p.startswith("/")]
    for path in paths:
        target = rootfs / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            shutil.copy2(os.path.realpath(path), target)


@pytest.fixture(scope="module")
def rootfs(env: Env) -> Path:
    root = env.root / "rootfs-programs"
    if root.exists():
        return root
    shutil.copytree(env.rootfs, root, symlinks=True)
    for program in HOST_PROGRAMS:
        _copy_with_libs(root, program)
    subprocess.run(["gcc", "-static", "-O1", "-o", str(root / "usr" / "bin" / "probe"), str(PROBE)], check=True)
    gohome = env.root / "go"
    subprocess.run(["go", "build", "-o", str(root / "usr" / "bin" / "goprobe"), str(GOPROBE)], check=True,
                   env={**os.environ, "CGO_ENABLED": "0", "HOME": str(gohome), "GOCACHE": str(gohome / "cache"),
                        "GOPATH": str(gohome / "path"), "GO111MODULE": "off"}, cwd=GOPROBE.parent)
    data = root / "data"
    tree = data / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "file").write_text("x" * 5000)
    (tree / "sub" / "inner").write_text("inner\n")
    (tree / "symlink").symlink_to("file")
    os.link(tree / "file", tree / "hardlink")
    subprocess.run(["tar", "-cf", str(data / "links.tar"), "-C", str(tree), "."], check=True)
    (data / "out").mkdir()
    (data / "db").mkdir()
    (data / "big").write_bytes(os.urandom(1 << 16) + b"a" * (1 << 20))
    (data / "pre").mkdir()
    (data / "pre" / "f").write_text("decompress me\n" * 1000)
    subprocess.run(["gzip", "-k", str(data / "pre" / "f")], check=True)
    for n in range(100):
        (data / f"x{n}").mkdir()
        (data / f"gz{n}").mkdir()
        (data / f"gz{n}" / "f").write_text("compress me\n" * 1000)
    os.chmod(data, 0o777)
    return root


class Runner:
    def __init__(self, env: Env, rootfs: Path) -> None:
        self.env, self.rootfs, self.n = env, rootfs, 0
        self.configs: dict[str, Path] = {}
        for coverage in COVERAGES:  # the session's store, enforced under each coverage
            path = env.root / f"config-{coverage}.toml"
            write_config(path, env.root, seccomp={"coverage": coverage})
            self.configs[coverage] = path

    def run(self, args: list[str], mode: str, profile: str, coverage: str | None = None
            ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
        self.n += 1
        args = [a.replace("{n}", str(self.n)) for a in args]
        path = self.env.bundle(args, learn=False, seccomp=None,
                               annotations={"io.syscage.mode": mode, "io.syscage.profile": profile})
        spec = json.loads((path / "config.json").read_text())
        spec["root"] = {"path": str(self.rootfs), "readonly": False}
        (path / "config.json").write_text(json.dumps(spec))
        environment = {**os.environ}
        if coverage:
            environment["SYSCAGE_CONFIG"] = str(self.configs[coverage])
        result = _call([WRAPPER, "--root", str(self.env.runc_root), "run", "-b", str(path), self.env.name("c")],
                       environment)
        return result, json.loads((path / "config.json").read_text())

    def learn(self, profile: str, args: list[str], times: int = 2) -> None:
        for _ in range(times):
            result, _ = self.run(args, "learn", profile)
            assert result.returncode == 0, (args, result.stderr)
        assert self.env.profile(profile)["complete"]

    def analysed(self, profile: str, runs: int) -> dict[str, Any]:
        return analysed(self.env, profile, runs)


def _call(args: list[str], environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Like test_wrapper_runc.call, for binary output too (gzip -c)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        done = subprocess.run(args, stdout=out, stderr=err, timeout=120, check=False, stdin=subprocess.DEVNULL,
                              env=environment)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(args, done.returncode, out.read().decode(errors="replace"),
                                           err.read().decode(errors="replace"))


def _allowed(spec: dict[str, Any]) -> set[str]:
    return {n for r in spec["linux"]["seccomp"]["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]}


def _observed(profile: dict[str, Any]) -> set[str]:
    """What the program itself made: observed syscalls, less the runtime's own between filter load and exec."""
    runtime = {s for run in profile["runs"] for s in run.get("pre_exec") or []}
    return {n for n, e in profile["syscalls"].items() if "observed" in e["sources"]} - runtime


def _save(key: str, value: Any) -> None:
    doc = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    doc[key] = value
    FIGURES.write_text(json.dumps(doc, indent=2, sort_keys=True))


DOCKER_COUNT = len({n for n in DOCKER_ALLOWED if syscall_number(n) is not None})


@pytest.mark.parametrize("program", sorted(WORKLOADS))
def test_learned_with_one_workload_enforced_with_another(env: Env, rootfs: Path, program: str) -> None:
    runner = Runner(env, rootfs)
    learn_args, other_args, expected = WORKLOADS[program]
    name = env.name(f"gen-{program}")
    runner.learn(name, learn_args)
    static = runner.analysed(name, 2)
    assert learn_args[0] in static["programs"] and not static["unresolved_total"], static
    outcome: dict[str, Any] = {"docker_default": DOCKER_COUNT}
    for coverage in COVERAGES:
        result, spec = runner.run(other_args, "enforce", name, coverage)
        ok = result.returncode == 0 and result.stdout == expected
        outcome[coverage] = {"allowed": len(_allowed(spec)), "ok": ok,
                             "error": "" if ok else (result.stderr.strip().splitlines() or ["?"])[-1][:200]}
    learned = _allowed(runner.run(other_args, "enforce", name, "learned")[1])
    outcome["added_by_related"] = outcome["learned+related"]["allowed"] - outcome["learned"]["allowed"]
    outcome["added_by_static"] = outcome["learned+static"]["allowed"] - outcome["learned"]["allowed"]
    outcome["learned_syscalls"] = len(learned)
    _save(f"generalise/{program}", outcome)
    print(program, json.dumps(outcome))
    assert outcome["learned+static"]["ok"], outcome  # 0 failures with what the binaries can do
    assert outcome["learned+static"]["allowed"] < DOCKER_COUNT  # still tighter than Docker's default


# program -> its workloads for a full learn (several kinds), for the recall of the static set
FULL_LEARN: dict[str, list[list[str]]] = {
    **{p: [w[0], w[1]] for p, w in WORKLOADS.items()},
    "tar": [WORKLOADS["tar"][0], WORKLOADS["tar"][1], ["/usr/bin/tar", "-tvf", "/data/links.tar"],
            ["/usr/bin/tar", "-czf", "/data/out/z{n}.tgz", "-C", "/data/tree", "."]],
    "gzip": [WORKLOADS["gzip"][0], WORKLOADS["gzip"][1], ["/usr/bin/gzip", "-t", "/data/pre/f.gz"],
             ["/usr/bin/gzip", "-dc", "/data/pre/f.gz"]],
    "busybox": [["sh", "-c", "ls -la /data/tree >/dev/null; cat /data/tree/file >/dev/null; mkdir -p /tmp/b; echo hi"],
                ["sh", "-c", "cp -a /data/tree /tmp/bb$$ && rm -rf /tmp/bb$$; sleep 0.1; date >/dev/null"]],
    "probe": [["/usr/bin/probe"], ["/usr/bin/probe", "/nonexistent", "/nowhere", "x", "y"]],
    "goprobe": [["/usr/bin/goprobe", "files", "/tmp/g"], ["/usr/bin/goprobe", "hash", "/data/big"],
                ["/usr/bin/goprobe", "serve"], ["/usr/bin/goprobe", "workers"]],
}


def test_recall_of_the_static_set_and_dangerous_never_added(env: Env, rootfs: Path) -> None:
    runner = Runner(env, rootfs)
    figures: dict[str, Any] = {}
    names: dict[str, str] = {}
    for program, workloads in sorted(FULL_LEARN.items()):
        name = names[program] = env.name(f"recall-{program}")
        for args in workloads:
            runner.learn(name, args, times=1)
        first = runner.analysed(name, len(workloads))
        runner.learn(name, workloads[-1], times=1)  # the last workload execs every binary the others do
        again = runner.analysed(name, len(workloads) + 1)
        profile = env.profile(name)
        seen = _observed(profile)
        static = set(first["syscalls"])
        missed = sorted(seen - static)
        figures[program] = {
            "learned": len(seen), "static": len(static), "recall": round(len(seen & static) / len(seen), 3),
            "missed": missed, "programs": first["programs"], "unresolved": first["unresolved"],
            "profile_syscalls": len(profile["syscalls"]), "docker_default": DOCKER_COUNT,
            **{f"added_by_{c.split('+')[1]}": len(additions(profile, c)) for c in COVERAGES[1:]},
            "binaries": {path: {"first_analysis_seconds": b["analysis_seconds"], "seconds": b["seconds"],
                                "cached": b["cached"], "seconds_again": again["binaries"][path]["seconds"]}
                         for path, b in first["binaries"].items()}}
        assert all(b["cached"] for b in again["binaries"].values())  # the second analysis comes from the cache
        assert static == set(again["syscalls"])
        assert not first["unresolved_total"], first["unresolved"]
        shown = subprocess.run([SYSCAGE, "show", name], capture_output=True, text=True, check=True,
                               env={**os.environ, "SYSCAGE_CONFIG": str(runner.configs["learned+static"])}).stdout
        assert f"static analysis: the programs of {len(workloads) + 1} of {len(workloads) + 1} runs" in shown
        added = [line.split()[0] for line in shown.split("added by seccomp.coverage", 1)[1].splitlines()[1:]
                 if line.startswith("  ")]
        assert not {"keyctl", "bpf", "userfaultfd", "perf_event_open", "unshare", "mount", "setns", "ptrace"} & set(
            added)
    _save("recall", figures)
    print(json.dumps(figures, indent=1))
    # The probe's syscall(SYS_keyctl) is found (its code can make it) but never added (above).
    assert "keyctl" in env.profile(names["probe"])["static"]["syscalls"]
    # tar -z runs its compressor as a child (through /bin/sh): an exec'd program, analysed with tar.
    assert len(figures["tar"]["programs"]) >= 2, figures["tar"]
    for program, fig in figures.items():
        assert fig["recall"] == 1.0, (program, fig)
