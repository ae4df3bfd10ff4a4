"""Learning what AppArmor mediates, on this host's kernel (no kprobes, no AppArmor): files by absolute path
with their access kinds, sockets by family and type; capabilities not traced. Every profile renders to text
apparmor_parser accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from integration.conftest import Env
from integration.env import rootfs_with_program
from syscage.apparmor import render_checked

WORKLOAD = ["sh", "-c", "cat /etc/hostname > /tmp/out; echo more >> /tmp/out; /bin/ls / > /dev/null; "
                        "nc 127.0.0.1 9 </dev/null; logger -t syscage hi; cd /etc && cat hostname; true"]


def test_learning_records_files_and_sockets_without_capabilities(env: Env) -> None:
    name = env.name("aa")
    result = env.run(env.bundle(WORKLOAD, profile=name))
    assert result.returncode == 0, result.stderr
    profile = env.profile(name)
    files = profile["files"]
    assert set(files["/etc/hostname"]["access"]) == {"r"}
    assert {"w", "c", "a"} <= set(files["/tmp/out"]["access"])
    assert "x" in files["/bin/ls"]["access"]
    assert "x" in files["/bin/sh"]["access"] or "x" in files.get("/bin/busybox", {}).get("access", [])
    assert {"inet stream", "unix dgram"} <= set(profile["network"])
    assert profile["network_traced"] is True
    # Every name was made absolute (`cd /etc && cat hostname` too); files are still not trusted as a whole.
    run = profile["runs"][0]
    assert {k: run["counters"][k] for k in ("paths_unresolved", "paths_truncated", "paths_dropped")} == \
        {"paths_unresolved": 0, "paths_truncated": 0, "paths_dropped": 0}, sorted(files)
    assert profile["files_traced"] is False and run["files_traced"] is False
    assert profile["capabilities_traced"] is False and profile["capabilities"] == {}
    assert profile["complete"], profile["incomplete_reasons"]  # the syscall profile does not depend on them
    text = render_checked(profile)
    assert "  file,\n" in text and "  capability,\n" in text
    assert "  network inet stream," in text and "  network unix dgram," in text
    assert "  network,\n" not in text


def test_a_neighbour_learning_at_the_same_time_does_not_leak_in(env: Env) -> None:
    import threading

    quiet, noisy = env.name("aa-q"), env.name("aa-n")
    learner = threading.Thread(target=lambda: env.run(env.bundle(["sh", "-c", "cat /etc/hostname; sleep 3"],
                                                                 profile=quiet)))
    learner.start()
    try:
        other = env.run(env.bundle(["sh", "-c", "cat /etc/passwd; nc 127.0.0.1 9 </dev/null; true"],
                                   profile=noisy))
        assert other.returncode == 0, other.stderr
    finally:
        learner.join()
    q, n = env.profile(quiet), env.profile(noisy)
    assert "/etc/passwd" in n["files"] and "/etc/passwd" not in q["files"]
    assert "inet stream" in n["network"] and q["network"] == {}
    assert "/etc/hostname" in q["files"]
    render_checked(q)
    render_checked(n)


@pytest.fixture(scope="module")
def path_ops_rootfs(env: Env) -> Path:
    return rootfs_with_program(env.rootfs, env.root / "rootfs-path-ops", "path_ops", "path-ops")


def test_relative_dirfd_and_non_open_path_operations_are_learned_as_container_paths(
        env: Env, path_ops_rootfs: Path) -> None:
    name = env.name("aa-ops")
    bundle = env.bundle(["/bin/path-ops"], profile=name)
    spec = json.loads((bundle / "config.json").read_text())
    spec["root"]["path"] = str(path_ops_rootfs)
    (bundle / "config.json").write_text(json.dumps(spec))
    result = env.run(bundle)
    assert result.returncode == 0, result.stdout + result.stderr
    profile = env.profile(name)
    access = {path: set(entry["access"]) for path, entry in profile["files"].items()}
    assert access["/etc/passwd"] == {"r"}  # openat(fd of /etc, "passwd")
    assert access["/dev/null"] == {"w"}  # open("null") with the cwd in the /dev mount
    assert access["/tmp/made/"] == {"c", "r", "w", "d"}  # mkdir, then renamed away
    assert access["/tmp/moved/"] == {"c", "w", "d"}  # rename's target, then rmdir("./moved")
    assert {"r", "w", "d"} <= access["/tmp/made"]  # a rename's names may be files too: both forms
    assert access["/tmp/hard"] == {"l", "d"} and access["/tmp/soft"] == {"c", "d"}
    assert {"c", "w", "d"} <= access["/tmp/f"]
    assert access["/bin/path-ops"] == {"x", "r", "k", "m"}  # flock and mmap(PROT_EXEC) of an open fd
    assert not [p for p in access if not p.startswith("/") or "/./" in p or "/../" in p]
    counters = profile["runs"][0]["counters"]
    assert counters["paths_unresolved"] == 0 and counters["paths_truncated"] == 0, counters
    text = render_checked(profile)
    assert "/tmp/made/" not in text or "file," in text  # rendered (files are not trusted yet: `file,`)
