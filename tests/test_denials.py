"""Parsing the kernel's denial records (fixtures: tests/fixtures/denials/ORIGIN.md), tying them to containers,
grouping them, the container notes and the LOG flag decision, --add through the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from syscage import containernotes, denials, logflag
from syscage.store import ProfileStore

FIXTURES = Path(__file__).parent / "fixtures" / "denials"


def lines(name: str) -> list[str]:
    return (FIXTURES / name).read_text().splitlines()


def test_kmsg_records_from_this_machine() -> None:
    losses = denials.Losses()
    records = [r for r in (denials.parse_kmsg_line(x, losses) for x in lines("kmsg.txt")) if r]
    assert [(r.syscall, r.action, r.outcome) for r in records] == [
        ("mkdir", "errno", "denied"), ("mkdir", "errno", "denied"), ("mkdir", "log", "logged"),
        ("mkdir", "log", "logged"), ("openat", "kill_process", "denied")]
    first = records[0]
    assert (first.pid, first.comm, first.exe, first.arch, first.syscall_nr, first.serial) == \
        (7622, "mkdir", "/bin/busybox", "x86_64", 83, 10906)
    assert first.time == pytest.approx(1796086172.354)
    assert not first.compat
    assert losses.suppressed() == 8  # "kauditd_printk_skb: 8 callbacks suppressed"
    assert losses.oldest is not None


def test_dmesg_lines_parse_too() -> None:
    record = denials.parse_kmsg_line('[11119.485327] audit: type=1326 audit(1796086172.354:10906): auid=4294967295 '
                                     'uid=0 gid=0 ses=4294967295 pid=7622 comm="mkdir" exe="/bin/busybox" sig=0 '
                                     'arch=c000003e syscall=83 compat=0 ip=0x47b567 code=0x50000')
    assert record is not None and record.syscall == "mkdir" and record.outcome == "denied"


def test_audit_log_records() -> None:
    records = [r for r in map(denials.parse_audit_line, lines("audit.log")) if r]
    # SYSCALL and STATUS records are not decisions about a container's access.
    assert [(r.kind, r.outcome) for r in records] == [("seccomp", "denied"), ("seccomp", "logged"),
                                                      ("apparmor", "denied"), ("apparmor", "logged")]
    seccomp, _, avc, allowed = records
    assert seccomp.syscall == "mkdir" and seccomp.comm == "mkdir"  # enriched fields after 0x1d are ignored
    assert (avc.operation, avc.path, avc.mask, avc.label) == \
        ("open", "/etc/shadow", "r", "syscage-web//&cri-containerd.apparmor.d")
    assert allowed.path == "/tmp/a b c"  # audit hex-encodes a value with a space


def test_constructed_records_compat_and_capability() -> None:
    records = [r for r in map(denials.parse_kmsg_line, lines("constructed-kmsg.txt")) if r]
    cap, i386, x32 = records
    assert cap.kind == "apparmor" and cap.path == "capability chown" and cap.operation == "capable"
    assert (i386.arch, i386.syscall, i386.compat) == ("i386", "sync", True)  # i386 36, not x86_64 getitimer
    assert (x32.arch, x32.syscall, x32.compat) == ("x32", "write", True)
    names, other = denials.learnable(records)
    assert names == [] and other == ["i386 sync", "x32 write"]


def test_garbage_is_not_a_record() -> None:
    for line in ("", "audit: type=1326 no stamp", "5,1,2,-;audit: type=1326 audit(1.2:3): pid=x syscall=1",
                 "type=SECCOMP msg=audit(1.000:1): arch=zz syscall=1 pid=1", "type=AVC msg=audit(1.0:1): pid=1"):
        assert denials.parse_kmsg_line(line) is None and denials.parse_audit_line(line) is None


def note(run_dir: Path, cid: str, profile: str, mode: str = "enforce", pid: int | None = None,
         cgroups_path: str = "", log_flag: bool | None = True) -> str:
    state = containernotes.write_note(run_dir, cid, profile, mode, "/usr/bin/runc", None, "/b", cgroups_path,
                                      log_flag, "why")
    if pid is not None:
        Path(state).write_text(json.dumps({"ociVersion": "1.0.2", "id": cid, "pid": pid, "status": "created"}))
    return state


def record(pid: int, when: float, syscall: str = "mkdir", serial: int = 1) -> denials.Record:
    return denials.Record("seccomp", when, serial, pid, syscall=syscall, outcome="denied", action="errno")


def test_a_gone_process_is_tied_by_its_init_pid(tmp_path: Path) -> None:
    note(tmp_path, "old", "web", pid=999_999_01)
    note(tmp_path, "new", "db", pid=999_999_02)
    resolver = denials.Resolver(tmp_path)
    later = denials.time.time() + 5
    r = record(999_999_02, later)
    resolver.resolve(r)
    assert (r.container_id, r.profile, r.mode, r.via) == ("new", "db", "enforce", "init pid")
    early = record(999_999_02, 1000.0)  # before the container existed: a pid of someone else
    resolver.resolve(early)
    assert early.container_id == ""


def test_a_live_process_is_tied_by_its_cgroup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert containernotes.cgroup_of(os.getpid()) is not None  # this process's own, read from /proc
    # The live process's cgroup as /proc/PID/cgroup gives it for a containerd container.
    monkeypatch.setattr(containernotes, "cgroup_of", lambda pid: "/default/me" if pid == os.getpid() else None)
    note(tmp_path, "someone-else", "other", cgroups_path="/nowhere/x")
    note(tmp_path, "me", "mine", cgroups_path="/default/me")
    resolver = denials.Resolver(tmp_path)
    r = record(os.getpid(), denials.time.time() + 1)
    resolver.resolve(r)
    assert (r.container_id, r.via) == ("me", "cgroup")
    resolver.save()
    # Once seen alive, the pid is remembered for records read after the process is gone.
    assert containernotes.read_pid_cache(tmp_path)[str(os.getpid())]["note"]


def test_cgroup_matching() -> None:
    n = {"container_id": "abc", "cgroups_path": "/default/abc"}
    assert containernotes.cgroup_matches("/default/abc", n)
    assert containernotes.cgroup_matches("/default/abc/sub", n)
    assert not containernotes.cgroup_matches("/default/abcd", {"container_id": "zzz", "cgroups_path": "/default/abc"})
    assert containernotes.cgroup_matches("/system.slice/cri-containerd-abc.scope",
                                         {"container_id": "abc", "cgroups_path": "system.slice:cri-containerd:abc"})
    assert containernotes.cgroup_matches("/k8s/abc", {"container_id": "abc", "cgroups_path": ""})


def test_apparmor_records_name_their_profile(tmp_path: Path) -> None:
    records = [r for r in map(denials.parse_audit_line, lines("audit.log")) if r and r.kind == "apparmor"]
    resolver = denials.Resolver(tmp_path)
    for r in records:
        resolver.resolve(r, live=False)
    assert [(r.profile, r.mode) for r in records] == [("web", "enforce"), ("web", "complain")]


def test_group_and_select(tmp_path: Path) -> None:
    rs = [record(1, 10.0, serial=1), record(1, 11.0, serial=2), record(1, 11.0, serial=2), record(2, 12.0, "chmod", 3)]
    for r in rs:
        r.container_id, r.profile = "c1", "web"
    rs[3].profile = "other"
    chosen = denials.select_records(rs, "web", None)
    assert len(chosen) == 2  # the same serial read twice counts once; another profile's is left out
    rows = denials.group(chosen)
    assert [(r["syscall"], r["count"], r["first"], r["time"]) for r in rows] == \
        [("mkdir", 2, denials.iso(10.0), denials.iso(11.0))]
    assert denials.select_records(rs, "web", 10.5) == [rs[1]]


def test_silent_enforcers_are_named(tmp_path: Path) -> None:
    note(tmp_path, "quiet", "web", log_flag=False)
    note(tmp_path, "loud", "web", log_flag=True)
    resolver = denials.Resolver(tmp_path)
    out = denials.notes_for(denials.Source("kmsg", "/dev/kmsg"), resolver, "web", None, 0)
    quiet = [n for n in out if "quiet" in n]
    assert quiet and "errno denials leave no kernel record: why" in quiet[0]
    assert not [n for n in out if "loud" in n]


def test_log_flag_decision_is_cached_per_binary(tmp_path: Path) -> None:
    fake = tmp_path / "runc"
    fake.write_text("#!/bin/sh\ncase $1 in --version) echo 'runc version 1.1.5';; "
                    "features) echo '{\"linux\": {\"seccomp\": {\"enabled\": true}}}';; esac\n")
    fake.chmod(0o755)
    ok, why = logflag.supports_log_flag(str(fake), tmp_path / "run")
    assert not ok and "refuses seccomp flags" in why
    fake.write_text(fake.read_text().replace('"enabled": true', '"supportedFlags": ["SECCOMP_FILTER_FLAG_LOG"]'))
    ok, why = logflag.supports_log_flag(str(fake), tmp_path / "run")  # a new binary (size, mtime): asked again
    assert ok, why
    crun = tmp_path / "crun"
    crun.write_text("#!/bin/sh\ncase $1 in --version) echo 'crun version 1.8.1';; *) echo unknown command; "
                    "exit 1;; esac\n")
    crun.chmod(0o755)
    assert logflag.supports_log_flag(str(crun), tmp_path / "run")[0]


def test_note_hook_copies_the_state(tmp_path: Path) -> None:
    state = note(tmp_path, "c", "web")
    entry = containernotes.hook_entry(state, 5)
    done = subprocess.run([entry["path"], *entry["args"][1:]], input=b'{"pid": 4242}', check=False,
                          env=dict(e.split("=", 1) for e in entry["env"]))
    assert done.returncode == 0
    assert [n["pid"] for n in containernotes.read_notes(tmp_path)] == [4242]
    # Its directory gone (a reboot, a reused bundle): the hook does nothing and never fails the container.
    done = subprocess.run([entry["path"], *entry["args"][1:3], entry["args"][3], str(tmp_path / "gone" / "x")],
                          input=b"{}", check=False)
    assert done.returncode == 0


def test_add_denied_merges_as_its_own_source(tmp_path: Path) -> None:
    from syscage.profile import Observation

    store = ProfileStore(tmp_path, 1, never_allow=("bpf",))
    store.record_run("web", Observation("c0", "2026-11-01T00:00:00Z", "2026-11-01T00:00:01Z", "seccomp",
                                        syscalls=["read", "write"]))
    added = store.add_denied("web", {"mkdir": "2026-11-02T00:00:00.000Z", "read": "2026-11-02T00:00:00.000Z",
                                     "bpf": "2026-11-02T00:00:00.000Z"}, ["c1"])
    assert added == ["mkdir"]
    profile = store.read("web")
    assert profile is not None
    assert profile["syscalls"]["mkdir"]["sources"] == ["denials"] and profile["syscalls"]["mkdir"]["runs"] == 0
    assert profile["syscalls"]["read"]["sources"] == ["denials", "observed"]
    assert "bpf" not in profile["syscalls"]
    assert profile["from_denials"][-1]["syscalls"] == ["mkdir"] and profile["complete"]
    seccomp = json.loads((tmp_path / "profiles" / "web" / "seccomp.json").read_text())
    assert "mkdir" in seccomp["syscalls"][0]["names"]
    assert store.add_denied("web", {"mkdir": "2026-11-03T00:00:00.000Z"}, ["c2"]) == []


def test_rich_stays_off_the_start_paths() -> None:
    """The runtime wrapper's and the hooks' modules never import rich (nor the CLI's output module)."""
    code = ("import sys; import syscage.shim.runtime, syscage.shim.prepare, syscage.hooks.hook, "
            "syscage.hooks.fast_prestart, syscage.containernotes, syscage.logflag; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'rich' or m == 'syscage.output'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_plain_output_when_piped(tmp_path: Path) -> None:
    from syscage import output

    done = subprocess.run([sys.executable, "-c", "from syscage import output; "
                           "output.table(['A', 'N'], [['x', 1], ['yy', 22]], right=['N'])"],
                          capture_output=True, text=True, check=True)
    assert done.stdout == "A    N\nx    1\nyy  22\n"
    assert not output.fancy()  # pytest captures stdout: not a terminal


def test_a_reused_bundle_loses_the_note_hook() -> None:
    """The note hook is syscage's: a later create of the bundle (any mode) drops it, and its tag sends such a
    bundle down the wrapper's slow path even without the annotation."""
    from syscage.shim.modifiers import drop_syscage_hooks
    from syscage.shim.runtime import SLOW_PATH_TAGS

    own = {"path": "/usr/bin/true", "args": ["true"]}
    spec = {"hooks": {"prestart": [own, containernotes.hook_entry("/run/x/containers/a.state", 5)]}}
    assert drop_syscage_hooks(spec) == {"hooks": {"prestart": [own]}}
    assert any(tag in json.dumps(spec).encode() for tag in SLOW_PATH_TAGS[1:])


def test_sweep_forgets_notes_older_than_the_log(tmp_path: Path) -> None:
    note(tmp_path, "ancient", "web", pid=999_999_03)
    resolver = denials.Resolver(tmp_path)
    assert resolver.sweep(None) == 0 and resolver.sweep(1000.0) == 0  # the log reaches back before it
    assert resolver.sweep(denials.time.time() + 3600) == 1
    assert containernotes.read_notes(tmp_path) == [] and not list((tmp_path / "containers").glob("*.state"))
