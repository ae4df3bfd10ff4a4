"""enforce and complain load the profile's AppArmor profile into a real kernel and the container runs under it.

Runs inside the guest only (see integration/guest.py), through syscage-runtime and real runc, with the
shipped default apparmor.mode = auto. Profiles are written with the store (no tracer needed): every syscall
allowed, so what is denied below is denied by AppArmor, not seccomp. /proc/kcore is unmasked in these
bundles: AppArmor's denial (EACCES, "Permission denied") comes before kcore's own CAP_SYS_RAWIO check
(EPERM, "Operation not permitted"), which is what a container without the profile gets.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from integration.env import VENV_BIN, Env
from integration.test_wrapper_runc import call
from syscage.apparmor_load import SECURITYFS
from syscage.config import load_config
from syscage.jsonlog import JsonLog
from syscage.profile import Observation
from syscage.shim.modifiers import apply
from syscage.shim.prepare import apparmor_modifiers
from syscage.syscalls import syscall_name

WRAPPER = str(VENV_BIN / "syscage-runtime")
PROBE = ("cat /proc/self/attr/current; cat /proc/kcore >/dev/null && echo kcore-read; "
         "cat /etc/hostname; echo done")
KCORE_BY_APPARMOR = "can't open '/proc/kcore': Permission denied"
KCORE_BY_KERNEL = "can't open '/proc/kcore': Operation not permitted"


def every_syscall(env: Env) -> str:
    name = env.name("aa-enforce")
    names = sorted({n for n in (syscall_name(nr) for nr in range(600)) if n})
    obs = Observation(container_id="c", started="t", stopped="t", cutover="seccomp", syscalls=names)
    env.profile_store().record_run(name, obs)
    return name


def bundle(env: Env, mode: str | None, name: str, label: str | None = None) -> Path:
    spec = json.loads((env.bundle(["true"], learn=False, seccomp=None) / "config.json").read_text())
    process: dict[str, Any] = {**spec["process"], "args": ["/bin/sh", "-c", PROBE]}
    if label is not None:
        process["apparmorProfile"] = label
    linux = {**spec["linux"], "maskedPaths": [p for p in spec["linux"]["maskedPaths"] if p != "/proc/kcore"]}
    notes = {"io.syscage.mode": mode, "io.syscage.profile": name} if mode else None
    return env.bundle(["true"], learn=False, seccomp=None, annotations=notes,
                      extra={"process": process, "linux": linux})


def run(env: Env, path: Path) -> tuple[str, subprocess.CompletedProcess[str]]:
    cid = env.name("c")
    return cid, call(WRAPPER, "--root", str(env.runc_root), "run", "-b", str(path), cid)


def placed(env: Env, cid: str) -> dict[str, Any]:
    """The one 'AppArmor profile in place' log entry of a container."""
    entries = [json.loads(line) for line in env.log_file.read_text().splitlines()]
    (entry,) = [e for e in entries if e.get("container_id") == cid and e["event"] == "AppArmor profile in place"]
    return entry


def revision() -> int:
    """The kernel's policy revision: it grows with every profile load, replacement or removal. One read on a
    fresh descriptor (it answers at once unless the revision is still the 0 it starts a reader at; a second
    read on the same descriptor would wait for the next change: the file is meant to be polled)."""
    fd = os.open(SECURITYFS / "revision", os.O_RDONLY | os.O_NONBLOCK)
    try:
        return int(os.read(fd, 64))
    except BlockingIOError:
        return 0
    finally:
        os.close(fd)


def kernel_modes() -> dict[str, str]:
    lines = (SECURITYFS / "profiles").read_text().splitlines()
    return {line.rsplit(" (", 1)[0]: line.rsplit(" (", 1)[1].rstrip(")") for line in lines}


def test_enforce_loads_once_and_confines_the_container(env: Env) -> None:
    name = every_syscall(env)
    label = f"syscage-{name}"
    _, free = run(env, bundle(env, None, name))  # the same container, syscage off: kcore's own EPERM
    assert KCORE_BY_KERNEL in free.stderr and "done" in free.stdout, free.stdout + free.stderr

    before = revision()
    cid, first = run(env, bundle(env, "enforce", name, label="unconfined"))  # unconfined may be replaced
    out = first.stdout + first.stderr
    assert first.returncode == 0, out
    assert f"{label} (enforce)" in first.stdout, out
    assert KCORE_BY_APPARMOR in first.stderr and "kcore-read" not in out and "done" in first.stdout, out
    loaded = placed(env, cid)
    assert loaded["apparmor_loaded"] is True and loaded["apparmor_profile"] == label
    assert kernel_modes()[label] == "enforce" and revision() > before
    assert (env.run_dir / "apparmor" / label).is_file()

    loads = revision()
    cid, second = run(env, bundle(env, "enforce", name))
    assert f"{label} (enforce)" in second.stdout and KCORE_BY_APPARMOR in second.stderr, second.stdout + second.stderr
    unchanged = placed(env, cid)
    assert unchanged["apparmor_loaded"] is False
    assert revision() == loads  # the parser did not run: the kernel's policy did not change
    print(f"\nAppArmor at enforce: first load {loaded['seconds']:.4f} s, unchanged {unchanged['seconds']:.4f} s")

    # Removed behind syscage's back (aa-teardown, apparmor_parser -R): the next enforce loads it again.
    subprocess.run(["apparmor_parser", "-R"], input=(env.run_dir / "apparmor" / label).read_bytes(), check=True)
    assert label not in kernel_modes()
    removed = revision()
    cid, third = run(env, bundle(env, "enforce", name))
    assert f"{label} (enforce)" in third.stdout and placed(env, cid)["apparmor_loaded"] is True
    assert revision() > removed


def test_complain_loads_a_complain_profile_of_its_own(env: Env) -> None:
    """The AppArmor part of a complain plan, loaded by the real parser into the kernel and run by plain runc
    (through syscage-runtime, complain would also start the tracer, whose BPF compile this emulated guest
    need not pay for: the seccomp and learning side of complain is tested on the host)."""
    name = every_syscall(env)
    enforce, complain = f"syscage-{name}", f"syscage-{name}-COMPLAIN"
    run(env, bundle(env, "enforce", name))
    path = bundle(env, None, name)
    spec = json.loads((path / "config.json").read_text())
    config = load_config(env.config_path)
    log = JsonLog.of(config, "runtime", container_id="complain-test")
    (path / "config.json").write_text(json.dumps(apply(spec, apparmor_modifiers(name, "complain", config, log, spec))))
    ran = env.run(path)
    out = ran.stdout + ran.stderr
    assert ran.returncode == 0, out
    assert f"{complain} (complain)" in ran.stdout, out
    # Complain logs what the rules do not allow and lets it happen; explicit deny rules (docker-default's) still deny.
    assert KCORE_BY_APPARMOR in ran.stderr and "kcore-read" not in out, out
    modes = kernel_modes()
    # Its own name: loading it switched no running enforce container of the profile to complain.
    assert modes[complain] == "complain" and modes[enforce] == "enforce"


def test_the_spec_own_profile_stays_stacked_under_ours(env: Env, tmp_path: Path) -> None:
    """Never looser than the spec: its own profile (here one denying /etc/hostname) keeps confining the
    container, stacked with syscage's (which denies /proc/kcore)."""
    own = env.name("lane-own")
    source = tmp_path / own
    source.write_text(f"abi <abi/3.0>,\ninclude <tunables/global>\n"
                      f"profile {own} flags=(attach_disconnected,mediate_deleted) {{\n"
                      "  file,\n  network,\n  capability,\n  signal,\n  ptrace,\n  deny /etc/hostname r,\n}\n")
    loaded = subprocess.run(["apparmor_parser", "-r", "-K", str(source)], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    try:
        name = every_syscall(env)
        path = bundle(env, "enforce", name, label=own)
        _, ran = run(env, path)
        out = ran.stdout + ran.stderr
        assert json.loads((path / "config.json").read_text())["process"]["apparmorProfile"] == \
            f"syscage-{name}//&{own}"
        assert ran.returncode == 0, out
        current = ran.stdout.splitlines()[0]
        assert set(current.removesuffix(" (enforce)").split("//&")) == {f"syscage-{name}", own}, out
        assert KCORE_BY_APPARMOR in ran.stderr, out  # ours
        assert "can't open '/etc/hostname': Permission denied" in ran.stderr, out  # the spec's own
        assert "done" in ran.stdout, out
        # The bundle used again: syscage's part is replaced, the spec's own kept, not stacked twice.
        _, again = run(env, path)
        assert json.loads((path / "config.json").read_text())["process"]["apparmorProfile"] == \
            f"syscage-{name}//&{own}"
        assert "can't open '/etc/hostname': Permission denied" in again.stderr, again.stdout + again.stderr
    finally:
        subprocess.run(["apparmor_parser", "-R", str(source)], capture_output=True, check=False)
