"""What the kernel denied (enforce) or logged (complain) for syscage's containers.

Records come from the kernel's audit messages: seccomp's type 1326 (SECCOMP) and AppArmor's type 1400 (AVC).
With no audit daemon they go to the kernel log (read from /dev/kmsg); with one they go to its log
(/var/log/audit/audit.log by default) and not to the kernel log. Each record is tied to a container and a
profile through syscage.containernotes (or, for AppArmor, its own profile label).

What can make the list short is said, never hidden: records the kernel's printk rate limit suppressed
(`kauditd_printk_skb: N callbacks suppressed`), audit's own losses (`audit_lost=`), the kernel log's
oldest record, enforce containers whose runtime cannot log errno denials, and an actions_logged sysctl
without "errno" or "log".
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from syscage import containernotes
from syscage.errors import SyscageError

KMSG = "/dev/kmsg"
AUDIT_LOG = "/var/log/audit/audit.log"
AUDITD_CONF = "/etc/audit/auditd.conf"
ACTIONS_LOGGED = "/proc/sys/kernel/seccomp/actions_logged"
TYPE_SECCOMP, TYPE_AVC = 1326, 1400

# SECCOMP_RET_* (the record's code is the action with its data masked off) -> (action, what it means)
ACTIONS = {0x80000000: ("kill_process", "denied"), 0x00000000: ("kill_thread", "denied"),
           0x00030000: ("trap", "denied"), 0x00050000: ("errno", "denied"), 0x7fc00000: ("user_notif", "denied"),
           0x7ff00000: ("trace", "denied"), 0x7ffc0000: ("log", "logged"), 0x7fff0000: ("allow", "allowed")}
# AUDIT_ARCH_* -> (OCI-ish arch name, how to name its syscall numbers)
ARCHES = {0xC000003E: "x86_64", 0x40000003: "i386", 0xC00000B7: "aarch64", 0x40000028: "arm",
          0x80000016: "s390x", 0xC0000015: "ppc64le", 0x80000015: "ppc64", 0xC00000F3: "riscv64"}
X32_BIT = 0x40000000

_FIELD = re.compile(r'([a-zA-Z_][a-zA-Z0-9_-]*)=("(?:[^"\\]|\\.)*"|\S*)')
_STAMP = re.compile(r"audit\((\d+)\.(\d+):(\d+)\)")
_KMSG_TYPE = re.compile(r"^audit: type=(\d+) ")
_AUDITLOG_TYPE = re.compile(r"^type=(\w+) msg=")
_SUPPRESSED = re.compile(r"kauditd_printk_skb: (\d+) callbacks suppressed")
_AUDIT_LOST = re.compile(r"audit: audit_lost=(\d+)")


@dataclass
class Record:
    """One kernel record of a seccomp action or an AppArmor decision."""

    kind: str  # "seccomp" or "apparmor"
    time: float  # seconds since the epoch (the audit stamp)
    serial: int  # audit's serial: unique per boot, so a record read twice counts once
    pid: int
    comm: str = ""
    exe: str = ""
    # seccomp
    arch: str = ""
    syscall_nr: int | None = None
    syscall: str = ""
    compat: bool = False
    action: str = ""  # errno, log, kill_process, ... (seccomp); DENIED, ALLOWED (AppArmor)
    outcome: str = ""  # denied, logged, allowed
    # AppArmor
    operation: str = ""
    path: str = ""
    label: str = ""  # the AppArmor profile (label) of the process
    mask: str = ""
    # Filled by resolve(): the container and syscage profile, and how they were found
    container_id: str = ""
    profile: str = ""
    mode: str = ""
    via: str = ""

    @property
    def what(self) -> str:
        if self.kind == "seccomp":
            return self.syscall
        return f"{self.operation} {self.path}".strip() + (f" ({self.mask})" if self.mask else "")

    def to_json(self) -> dict[str, Any]:
        out = {"time": iso(self.time), "kind": self.kind, "container_id": self.container_id or None,
               "profile": self.profile or None, "mode": self.mode or None, "pid": self.pid, "comm": self.comm,
               "outcome": self.outcome, "action": self.action, "via": self.via or None}
        if self.kind == "seccomp":
            out.update({"syscall": self.syscall, "syscall_nr": self.syscall_nr, "arch": self.arch,
                        "compat": self.compat})
        else:
            out.update({"operation": self.operation, "path": self.path, "apparmor_profile": self.label,
                        "mask": self.mask})
        return out


@dataclass
class Losses:
    """What the source could not give us."""

    suppressed_at: list[tuple[float | None, int]] = field(default_factory=list)  # printk rate limit: (when, count)
    audit_lost: int = 0  # audit's own counter (backlog overflows, rate limits)
    oldest: float | None = None  # time of the oldest line still in the source

    def suppressed(self, since: float | None = None) -> int:
        return sum(n for when, n in self.suppressed_at if since is None or when is None or when >= since)


def boot_offset() -> float:
    """Wall time of the kernel log's clock zero (its stamps are monotonic microseconds since boot)."""
    return time.time() - time.clock_gettime(time.CLOCK_MONOTONIC)


def iso(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fields(text: str) -> dict[str, str]:
    out = {}
    for key, value in _FIELD.findall(text):
        out.setdefault(key, value[1:-1] if value.startswith('"') and value.endswith('"') else value)
    return out


def _unhex(value: str) -> str:
    """audit writes a value with unusual bytes as bare hex (name=2F746D70...)."""
    if value and len(value) % 2 == 0 and re.fullmatch(r"[0-9A-F]+", value):
        with contextlib.suppress(ValueError):
            return bytes.fromhex(value).decode(errors="replace")
    return value


def parse_message(kind_type: int, body: str) -> Record | None:
    """A record from an audit message's text (after "type=N" / "type=NAME msg="), or None."""
    stamp = _STAMP.search(body)
    if not stamp:
        return None
    when = int(stamp.group(1)) + int(stamp.group(2)) / 1000
    body = body.split("\x1d", 1)[0]  # auditd's enriched fields (ARCH=, SYSCALL=) follow a GS byte
    f = _fields(body[stamp.end():])
    try:
        pid = int(f.get("pid", "0"))
    except ValueError:
        return None
    common = {"time": when, "serial": int(stamp.group(3)), "pid": pid, "comm": _unhex(f.get("comm", "")),
              "exe": _unhex(f.get("exe", ""))}
    if kind_type == TYPE_SECCOMP:
        try:
            arch_code = int(f["arch"], 16)
            nr = int(f["syscall"])
            code = int(f.get("code", "0"), 16) & 0xFFFF0000
        except (KeyError, ValueError):
            return None
        action, outcome = ACTIONS.get(code, (f"0x{code:08x}", "denied"))
        arch, name, compat = syscall_of(arch_code, nr, f.get("compat") == "1")
        return Record("seccomp", arch=arch, syscall_nr=nr, syscall=name, compat=compat, action=action,
                      outcome=outcome, **common)
    if kind_type == TYPE_AVC and "apparmor" in f:
        decision = f["apparmor"]
        outcome = {"DENIED": "denied", "ALLOWED": "logged"}.get(decision)
        if outcome is None:
            return None  # STATUS (profile loads), AUDIT: not decisions about a container's access
        path = _unhex(f.get("name", "")) or f.get("family", "") + (f" {f['sock_type']}" if "sock_type" in f else "")
        if f.get("operation") == "capable":
            path = f"capability {f.get('capname', f.get('capability', ''))}"
        return Record("apparmor", action=decision, outcome=outcome, operation=f.get("operation", ""), path=path,
                      label=_unhex(f.get("profile", "")), mask=f.get("denied_mask") or f.get("requested_mask", ""),
                      **common)
    return None


def syscall_of(arch_code: int, nr: int, compat_field: bool) -> tuple[str, str, bool]:
    """(arch, syscall name, compat) for a record: the native table, or i386/x32 names for compat calls."""
    from syscage import arch as arches
    from syscage.syscalls import compat_syscall_name, syscall_name

    arch = ARCHES.get(arch_code, f"arch-{arch_code:08x}")
    native = arches.machine() == arch
    if arch == "x86_64" and nr & X32_BIT:
        return "x32", compat_syscall_name("x32", nr & ~X32_BIT), True
    if arch == "i386" and arches.machine() == "x86_64":
        return arch, compat_syscall_name("i386", nr), True
    if native:
        return arch, syscall_name(nr) or f"#{nr}", compat_field
    return arch, f"{arch}#{nr}", True


def parse_kmsg_line(line: str, losses: Losses | None = None) -> Record | None:
    """One /dev/kmsg record ("PRI,SEQ,USEC,FLAGS;MESSAGE") or one `dmesg` line ("[ 12.3] MESSAGE")."""
    when: float | None = None
    prefix, _, rest = line.partition(";")
    if rest and prefix.count(",") >= 2:
        message = rest
        with contextlib.suppress(ValueError):
            when = boot_offset() + int(prefix.split(",")[2]) / 1e6
    else:
        stamp = re.match(r"^\[\s*([\d.]+)\]\s*", line)
        message = line[stamp.end():] if stamp else line
    message = message.split("\n", 1)[0]
    if losses is not None:
        if when is not None and losses.oldest is None:
            losses.oldest = when
        if m := _SUPPRESSED.search(message):
            losses.suppressed_at.append((when, int(m.group(1))))
        elif m := _AUDIT_LOST.search(message):
            losses.audit_lost = max(losses.audit_lost, int(m.group(1)))
    m = _KMSG_TYPE.match(message)
    if not m:
        return None
    return parse_message(int(m.group(1)), message[m.end():])


def parse_audit_line(line: str, losses: Losses | None = None) -> Record | None:
    """One line of auditd's log ("type=SECCOMP msg=audit(...): ...")."""
    m = _AUDITLOG_TYPE.match(line)
    if not m:
        return None
    kind = {"SECCOMP": TYPE_SECCOMP, "AVC": TYPE_AVC}.get(m.group(1))
    if kind is None and m.group(1).startswith("UNKNOWN["):
        with contextlib.suppress(ValueError):
            kind = int(m.group(1)[8:-1])
    if kind is None:
        return None
    return parse_message(kind, line[m.end():])


# -- sources --------------------------------------------------------------------------------------------


def audit_daemon() -> str | None:
    """The audit daemon's name if one runs (records then go to its log, not the kernel log)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            comm = (proc / "comm").read_text().strip()
        except OSError:
            continue
        if comm in ("auditd", "go-audit", "auditbeat"):
            return comm
    return None


def audit_log_path(conf: Path = Path(AUDITD_CONF)) -> Path:
    try:
        for line in conf.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "log_file" and value.strip():
                return Path(value.strip())
    except OSError:
        pass
    return Path(AUDIT_LOG)


@dataclass
class Source:
    name: str  # "kmsg", "audit" or a file
    path: str
    losses: Losses = field(default_factory=Losses)

    def describe(self) -> str:
        return {"kmsg": f"the kernel log ({self.path}; no audit daemon runs)",
                "audit": f"the audit daemon's log ({self.path})"}.get(self.name, self.path)


def choose_source(explicit: str | None = None) -> Source:
    if explicit in (None, "auto"):
        daemon = audit_daemon()
        if daemon == "auditd":
            return Source("audit", str(audit_log_path()))
        if daemon:
            raise SyscageError(f"{daemon} receives the kernel's audit records, so they are not in the kernel log",
                               "point `syscage denials --from FILE` at where it writes them")
        return Source("kmsg", KMSG)
    if explicit == "kmsg":
        return Source("kmsg", KMSG)
    if explicit == "audit":
        return Source("audit", str(audit_log_path()))
    return Source("file", str(explicit))


def read_records(source: Source) -> list[Record]:
    """Every record the source holds now."""
    if source.name == "kmsg":
        return [r for r in (parse_kmsg_line(line, source.losses) for line in _kmsg_lines(follow=False)) if r]
    try:
        text = Path(source.path).read_text(errors="replace")
    except OSError as exc:
        raise SyscageError(f"cannot read {source.path}: {exc.strerror}", "run as root, or check the path") from None
    out = []
    for line in text.splitlines():
        record = parse_audit_line(line, source.losses) if line.startswith("type=") else \
            parse_kmsg_line(line, source.losses)
        if record:
            out.append(record)
    return out


def follow_records(source: Source, stop: Any = None) -> Iterator[Record]:
    """Records as they arrive (after those already there). stop(): return True to end."""
    if source.name == "kmsg":
        for line in _kmsg_lines(follow=True, skip_existing=True, stop=stop):
            if line and (record := parse_kmsg_line(line, source.losses)):
                yield record
        return
    with open(source.path, errors="replace") as f:
        f.seek(0, os.SEEK_END)
        while not (stop and stop()):
            line = f.readline()
            if not line:
                time.sleep(0.1)
                continue
            if record := (parse_audit_line(line, source.losses) if line.startswith("type=")
                          else parse_kmsg_line(line, source.losses)):
                yield record


def _kmsg_lines(follow: bool, skip_existing: bool = False, stop: Any = None) -> Iterator[str]:
    """/dev/kmsg: one record per read(); EAGAIN at the end (non-blocking), EPIPE when the ring buffer
    overwrote the record we were at (reading goes on from the oldest one left)."""
    try:
        fd = os.open(KMSG, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise SyscageError(f"cannot read {KMSG}: {exc.strerror}", "run syscage denials as root") from None
    try:
        if skip_existing:
            os.lseek(fd, 0, os.SEEK_END)
        while True:
            try:
                chunk = os.read(fd, 8192)
            except BlockingIOError:
                if not follow:
                    return
                if stop and stop():
                    return
                select.select([fd], [], [], 0.2)
                continue
            except BrokenPipeError:
                continue
            if not chunk:
                return
            yield chunk.decode(errors="replace")
    finally:
        os.close(fd)


# -- which container ------------------------------------------------------------------------------------


class Resolver:
    """Ties a record's pid to a noted container (see syscage.containernotes) and its profile."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.notes = containernotes.read_notes(run_dir)
        self.by_stem = {n["note"]: n for n in self.notes}
        self.pids = containernotes.read_pid_cache(run_dir)
        self.pids_changed = False

    def refresh(self) -> None:
        self.notes = containernotes.read_notes(self.run_dir)
        self.by_stem = {n["note"]: n for n in self.notes}

    def _alive_at(self, note: dict[str, Any], when: float) -> bool:
        return float(note.get("created", 0)) <= when + 1  # the audit stamp has ms resolution; created µs

    def resolve(self, record: Record, live: bool = True) -> None:
        if record.kind == "apparmor":
            self._from_label(record)
        candidates = [n for n in self.notes if self._alive_at(n, record.time)]
        note = None
        if live:
            cgroup = containernotes.cgroup_of(record.pid)
            if cgroup is not None:
                # The newest note whose container the live process's cgroup names.
                note = next((n for n in reversed(candidates) if containernotes.cgroup_matches(cgroup, n)), None)
                if note is not None:
                    record.via = "cgroup"
                    self.pids[str(record.pid)] = {"note": note["note"], "seen": time.time()}
                    self.pids_changed = True
        if note is None:
            note = next((n for n in reversed(candidates) if n.get("pid") == record.pid), None)
            if note is not None:
                record.via = "init pid"
        if note is None:
            cached = self.pids.get(str(record.pid))
            if cached and cached.get("note") in self.by_stem:
                note = self.by_stem[cached["note"]]
                record.via = "pid seen earlier"
        if note is not None:
            record.container_id, record.mode = note["container_id"], note.get("mode", "")
            record.profile = record.profile or note.get("profile", "")

    def _from_label(self, record: Record) -> None:
        """AppArmor names the profile itself: syscage-NAME (enforce) or syscage-NAME-COMPLAIN, perhaps stacked."""
        for part in record.label.split("//&"):
            part = part.strip()
            if part.startswith("syscage-"):
                name = part[len("syscage-"):]
                complain = name.endswith("-COMPLAIN")
                record.profile = name[:-len("-COMPLAIN")] if complain else name
                record.mode = "complain" if complain else "enforce"
                record.via = "apparmor label"
                return

    def save(self) -> None:
        if self.pids_changed:
            known = {n["note"] for n in self.notes}
            containernotes.write_pid_cache(self.run_dir, {k: v for k, v in self.pids.items()
                                                          if v.get("note") in known})
            self.pids_changed = False

    def sweep(self, oldest: float | None) -> int:
        """Forget the notes no record still in the source can belong to: created before its oldest line, with
        no live init process. Returns how many."""
        if oldest is None:
            return 0
        gone = [n["note"] for n in self.notes if float(n.get("created", 0)) < oldest - 60
                and not (n.get("pid") and containernotes.cgroup_of(n["pid"]) is not None
                         and containernotes.cgroup_matches(containernotes.cgroup_of(n["pid"]) or "", n))]
        containernotes.forget_notes(self.run_dir, gone)
        if gone:
            self.refresh()
        return len(gone)

    def silent_enforcers(self, since: float | None, profile: str | None) -> list[dict[str, Any]]:
        """Enforce containers whose errno denials leave no kernel record (their runtime refuses the flag)."""
        def in_window(note: dict[str, Any]) -> bool:  # created in it, or still running in it
            return since is None or float(note.get("created", 0)) >= since or (
                note.get("pid") is not None and containernotes.cgroup_of(note["pid"]) is not None)

        return [n for n in self.notes if n.get("mode") == "enforce" and n.get("log_flag") is False
                and (profile is None or n.get("profile") == profile) and in_window(n)]


def actions_logged(path: str = ACTIONS_LOGGED) -> set[str] | None:
    try:
        return set(Path(path).read_text().split())
    except OSError:
        return None


# -- what to show ---------------------------------------------------------------------------------------


def group(records: list[Record]) -> list[dict[str, Any]]:
    """One row per container, profile, kind, syscall or access, and outcome: a count and first/last time."""
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in records:
        key = (r.container_id, r.profile, r.kind, r.what, r.outcome, r.arch)
        row = rows.get(key)
        if row is None:
            row = rows[key] = {**r.to_json(), "count": 0, "first": iso(r.time)}
        row["count"] += 1
        row["time"] = iso(r.time)
    return sorted(rows.values(), key=lambda row: (row["time"], row["container_id"] or "", row["kind"]))


def select_records(records: list[Record], profile: str | None, since: float | None,
                   everything: bool = False) -> list[Record]:
    seen: set[int] = set()
    out = []
    for r in records:
        if r.serial in seen:
            continue
        seen.add(r.serial)
        if since is not None and r.time < since:
            continue
        if r.outcome == "allowed":
            continue
        if profile is not None and r.profile != profile:
            continue
        if profile is None and not r.profile and not everything:
            continue  # not one of syscage's containers (unless the operator asks for everything)
        out.append(r)
    return out


def notes_for(source: Source, resolver: Resolver, profile: str | None, since: float | None,
              records_seen: int) -> list[str]:
    """What the operator must know about what is not in the list."""
    out = []
    suppressed = source.losses.suppressed(since)
    if suppressed:
        out.append(f"the kernel's printk rate limit suppressed {suppressed} audit record(s) in "
                   f"{source.describe()}{' in that time' if since else ''}: some denials may be missing "
                   "(an audit daemon keeps them all)")
    if source.losses.oldest is not None and since is not None and source.losses.oldest > since:
        out.append(f"the kernel log reaches back only to {iso(source.losses.oldest)}")
    if source.losses.audit_lost:
        out.append(f"audit reports {source.losses.audit_lost} record(s) lost (audit_lost)")
    logged = actions_logged()
    if logged is not None:
        if "errno" not in logged:
            out.append(f"{ACTIONS_LOGGED} lacks \"errno\": enforce denials leave no kernel record "
                       "(echo the list with errno added into it)")
        if "log" not in logged:
            out.append(f"{ACTIONS_LOGGED} lacks \"log\": complain mode leaves no kernel record")
    for note in resolver.silent_enforcers(since, profile):
        out.append(f"container {note['container_id']} (profile {note.get('profile')}, enforce, created "
                   f"{iso(float(note.get('created', 0)))}): its errno denials leave no kernel record: "
                   f"{note.get('log_flag_why')}; run it in complain mode (io.syscage.mode=complain) to see what "
                   "it would be denied, or use a runtime that passes SECCOMP_FILTER_FLAG_LOG on (crun)")
    return out


def since_time(text: str | None) -> float | None:
    if not text:
        return None
    from syscage.curate import parse_when

    return parse_when(text).timestamp()


def collect(run_dir: Path, profile: str | None, since: str | None, source_name: str | None = None
            ) -> tuple[list[Record], Source, Resolver]:
    source = choose_source(source_name)
    resolver = Resolver(run_dir)
    records = read_records(source)
    for r in records:
        resolver.resolve(r)
    resolver.save()
    return select_records(records, profile, since_time(since)), source, resolver


def learnable(records: list[Record]) -> tuple[list[str], list[str]]:
    """(native syscall names a profile can learn, what cannot be learned: compat calls, unnamed numbers)."""
    names, other = set(), set()
    for r in records:
        if r.kind != "seccomp":
            continue
        if r.compat or r.syscall.startswith("#") or "#" in r.syscall:
            other.add(f"{r.arch} {r.syscall}")
        else:
            names.add(r.syscall)
    return sorted(names), sorted(other)
