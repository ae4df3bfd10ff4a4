"""Learning what AppArmor mediates, on this host's kernel (no kprobes, no AppArmor): files by absolute path
with their access kinds, sockets by family and type; capabilities not traced. Every profile renders to text
apparmor_parser accepts."""

from __future__ import annotations

from integration.conftest import Env
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
    # The relative `cat hostname` is counted, not guessed: files are never trusted as a whole yet.
    run = profile["runs"][0]
    assert run["counters"]["paths_unresolved"] >= 1
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
