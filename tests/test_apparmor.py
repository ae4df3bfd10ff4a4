"""AppArmor rendering: generalisation, escaping of hostile paths, determinism, the kept docker-default
denials, the capability rule. Every profile a test renders is compiled with apparmor_parser (no load)."""

from __future__ import annotations

import copy
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from syscage import apparmor
from syscage.apparmor import DOCKER_DEFAULT_DENIES, FEATURES, check, render, render_checked
from syscage.apparmor_paths import ALNUM, PID, PY_TEMP_CHAR, TID, generalise
from syscage.cli import main
from syscage.errors import SyscageError
from syscage.profile import new_profile
from syscage.store import dump_json


def entry(access: str = "", run: str = "c1", seen: str = "2026-01-01T00:00:00Z", runs: int = 1) -> dict[str, Any]:
    e: dict[str, Any] = {"first_run": run, "first_seen": seen, "runs": runs}
    if access:
        e["access"] = list(access)
    return e


def traced(files: dict[str, Any] | None = None, network: dict[str, Any] | None = None,
           caps: dict[str, Any] | None = None, name: str = "web") -> dict[str, Any]:
    p = new_profile(name, "SCMP_ARCH_X86_64", "2026-01-01T00:00:00Z")
    p.update(files=files or {}, network=network or {}, capabilities=caps or {},
             files_traced=True, network_traced=True, capabilities_traced=True)
    return p


def rendered(profile: dict[str, Any], bounding: list[str] | None = None) -> str:
    """Render and compile: every profile these tests look at must pass apparmor_parser."""
    return render_checked(profile, bounding)


def rule_lines(text: str, section: str) -> list[str]:
    """The rule lines of one learned section (between its header comment and the blank line after it)."""
    lines = text.splitlines()
    start = lines.index(f"  # {section}: learned") + 1
    end = start
    while lines[end] not in ("", "}"):
        end += 1
    return lines[start:end]


# --- generalisation ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "parts"), [
    ("/proc/123/status", (b"/proc/", PID, b"/status")),
    ("/proc/1", (b"/proc/", PID)),
    ("/proc/4194304/maps", (b"/proc/", PID, b"/maps")),
    ("/proc/12/task/345/stat", (b"/proc/", PID, b"/task/", TID, b"/stat")),
    ("/proc/12/task/", (b"/proc/", PID, b"/task/")),
    ("/proc/12/fd/3", (b"/proc/", PID, b"/fd/3")),  # only the pid: fd numbers stay
])
def test_per_pid_proc_entries_are_generalised(path: str, parts: tuple[object, ...]) -> None:
    assert generalise(path, set()) == parts


@pytest.mark.parametrize("path", [
    "/proc/self/status", "/proc/thread-self/stat", "/proc/sys/kernel/ostype", "/proc/0/status",
    "/proc/0123/status", "/proc/4194305/status", "/proc/12345678/status", "/proc/1a/status", "/proc/",
    "/procx/123/status", "/srv/proc/123/status", "/etc/123",
])
def test_other_paths_stay_literal(path: str) -> None:
    assert generalise(path, {path}) == (os.fsencode(path),)


@pytest.mark.parametrize(("path", "parts"), [
    ("/tmp/tmp.Ab3dEf7hIj", (b"/tmp/", b"tmp.", *[ALNUM] * 10)),          # coreutils mktemp(1)
    ("/tmp/tmpk3j_9x2a", (b"/tmp/", b"tmp", *[PY_TEMP_CHAR] * 8)),       # Python tempfile
    ("/tmp/tmpabcdefgh", (b"/tmp/", b"tmp", *[PY_TEMP_CHAR] * 8)),
    ("/tmp/sh-thd.aB3xYz", (b"/tmp/", b"sh-thd.", *[ALNUM] * 6)),       # glibc mkstemp
    ("/tmp/ccQ9xk2P", (b"/tmp/", b"cc", *[ALNUM] * 6)),
    ("/tmp/a1b2c3", (b"/tmp/", *[ALNUM] * 6)),
    ("/var/tmp/dataAB12cd", (b"/var/tmp/", b"data", *[ALNUM] * 6)),
    ("/dev/shm/sem.Xy12ab", (b"/dev/shm/", b"sem.", *[ALNUM] * 6)),
])
def test_created_temporary_names_are_generalised(path: str, parts: tuple[object, ...]) -> None:
    assert generalise(path, {path}) == parts
    assert generalise(path, set()) == (os.fsencode(path),)  # not created by the container: literal


@pytest.mark.parametrize("path", [
    "/tmp/output", "/tmp/report", "/tmp/ABCDEF", "/tmp/123456", "/tmp/12345", "/tmp/app.sock",
    "/tmp/sub/ab12CD", "/etc/ab12CD", "/tmpab12CD", "/tmp/",
])
def test_ordinary_created_names_stay_literal(path: str) -> None:
    assert generalise(path, {path}) == (os.fsencode(path),)


def test_entries_beneath_a_created_temporary_directory_follow_it() -> None:
    created = {"/tmp/tmpx1y2z3w4"}
    assert generalise("/tmp/tmpx1y2z3w4/out/a.txt", created) == (
        b"/tmp/", b"tmp", *[PY_TEMP_CHAR] * 8, b"/out/a.txt")
    assert generalise("/tmp/tmpx1y2z3w4/out/a.txt", set()) == (b"/tmp/tmpx1y2z3w4/out/a.txt",)


def test_generalised_paths_merge_into_one_rule_naming_the_first_run() -> None:
    p = traced({"/proc/77/status": entry("r", "c2", "2026-01-02T00:00:00Z"),
                "/proc/5/status": entry("r", "c1", "2026-01-01T00:00:00Z"),
                "/proc/9/stat": entry("r", "c3"),
                "/proc/9/status": entry("w", "c3", "2026-01-03T00:00:00Z")})
    assert rule_lines(rendered(p), "files") == [
        '  "/proc/@{pid}/stat" r,  # first needed by run c3',
        '  "/proc/@{pid}/status" rw,  # first needed by run c1',
    ]


def test_generalised_temp_pattern_compiles_to_the_documented_shape() -> None:
    p = traced({"/tmp/sh-thd.aB3xYz": entry("cwd"), "/tmp/tmp.Ab3dEf7hIj": entry("cr")})
    assert rule_lines(rendered(p), "files") == [
        '  "/tmp/sh-thd.' + "[a-zA-Z0-9]" * 6 + '" w,  # first needed by run c1',
        '  "/tmp/tmp.' + "[a-zA-Z0-9]" * 10 + '" rw,  # first needed by run c1',
    ]


# --- permissions ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("access", "perms"), [
    ("r", "r"), ("w", "w"), ("a", "a"), ("aw", "w"), ("c", "w"), ("d", "w"), ("ra", "ra"), ("l", "l"),
    ("k", "k"), ("x", "ix"), ("m", "m"), ("rx", "rix"), ("rmx", "rmix"), ("rwacdlkxm", "rwlkmix"),
])
def test_access_kinds_map_to_apparmor_permissions(access: str, perms: str) -> None:
    lines = rule_lines(rendered(traced({"/usr/bin/thing": entry(access)})), "files")
    assert lines == [f'  "/usr/bin/thing" {perms},  # first needed by run c1']


# --- hostile paths ----------------------------------------------------------------------------------------

NASTY = [
    "/tmp/a b",
    '/tmp/q"uote',
    "/tmp/back\\slash",
    "/tmp/star*",
    "/tmp/q?mark",
    "/tmp/[set]",
    "/tmp/{a,b}",
    "/tmp/caret^",
    "/tmp/comma,x",
    "/tmp/hash#x",
    "/tmp/@{HOME}",
    "/tmp/@{pid}",
    "/tmp/new\nline",
    '/tmp/x" rwix,\n  /** rwlkmix,\n  "/y',
    '/tmp/x" r,\n}\nprofile evil flags=(unconfined) {\n  /** rwix,\n  "/z',
    "/tmp/x r,\n  capability sys_admin,\n  /y",
    "/tmp/tab\tcr\rdel\x7fctl\x01",
    "/tmp/\udcff\udcfe-not-utf8",
    "/tmp/caf\u00e9-\u2603",
    "/tmp/-> px",
    "/tmp/\\x41",
    "/tmp/\\\\\"",
    "/tmp/trailing\\",
    "/tmp/dir/",
    "/tmp/..",
    "/proc/12/\n}",
]


def dfa_walk(quoted: str) -> list[int]:
    """Compile a one-rule profile and read its file DFA back: the bytes along the single path it accepts.
    Fails if the rule matches anything but one exact string (a glob, a variable, an alternative)."""
    text = f"profile t {{\n  {quoted} r,\n}}\n"
    done = subprocess.run(["apparmor_parser", "-Q", "-K", "-M", str(FEATURES), "-D", "dfa-states"],
                          input=text.encode(), capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    dump = done.stdout.decode("latin-1") + done.stderr.decode("latin-1")
    accept_part, states_part = dump.split("\n\n")[:2]
    accepting = {int(s) for s in re.findall(r"^\{(\d+)\} \(0x", accept_part, re.M)}
    edges: dict[int, list[tuple[int, int]]] = {}
    state = 0
    for line in states_part.splitlines():
        head = re.match(r"\{(\d+)\} perms", line)
        if head:
            state = int(head.group(1))
            continue
        edge = re.search(r"0x([0-9a-f]+) -> \{(\d+)\}", line)
        assert edge, f"not a single-byte transition: {line!r}"
        edges.setdefault(state, []).append((int(edge.group(1), 16), int(edge.group(2))))
    walked, state = [], 1
    while state in edges:
        assert len(edges[state]) == 1, f"state {state} branches: {edges[state]}"
        byte, state = edges[state][0]
        walked.append(byte)
    assert state in accepting
    return walked


@pytest.mark.parametrize("path", NASTY)
def test_hostile_path_is_one_literal_rule(path: str) -> None:
    p = traced({path: entry("r"), "/etc/hosts": entry("r")}, caps={"chown": entry()})
    text = rendered(p)
    lines = rule_lines(text, "files")
    assert len(lines) == 2 and '  "/etc/hosts" r,  # first needed by run c1' in lines
    lines.remove('  "/etc/hosts" r,  # first needed by run c1')
    assert lines[0].isascii() and lines[0].endswith(" r,  # first needed by run c1")
    # Nothing else appeared: the text is the clean profile with just this one rule line more.
    assert text.count("\n") == rendered(traced({"/etc/hosts": entry("r")}, caps={"chown": entry()})).count("\n") + 1
    assert "\nprofile evil" not in text and "\n  capability sys_admin" not in text
    # The rule matches exactly the path's bytes and nothing else.
    quoted = lines[0].removeprefix("  ").removesuffix(" r,  # first needed by run c1")
    if not path.startswith("/proc/"):
        assert bytes(dfa_walk(quoted)) == os.fsencode(path)


def test_hostile_run_id_stays_in_its_comment() -> None:
    p = traced({"/etc/hosts": entry("r", run="c1\n  /** rwix,\n  capability sys_admin,")},
               network={"inet stream": entry(run="x\r\nnetwork,")})
    text = rendered(p)
    assert "\n  /** rwix," not in text and "\n  capability sys_admin" not in text
    assert rule_lines(text, "files") == [
        '  "/etc/hosts" r,  # first needed by run c1\\x0a  /** rwix,\\x0a  capability sys_admin,']
    assert rule_lines(text, "network") == ["  network inet stream,  # first needed by run x\\x0d\\x0anetwork,"]


@pytest.mark.parametrize(("change", "why"), [
    ({"files": {"relative/path": entry("r")}}, "not absolute"),
    ({"files": {"/a\0b": entry("r")}}, "not absolute"),
    ({"files": {"/a": entry("rz")}}, "access of file"),
    ({"files": {"/a": entry("")}}, "access of file"),
    ({"files": {"/a": {"access": ["r"]}}}, "malformed"),
    ({"files": {"/a\ud800": entry("r")}}, "not a path"),
    ({"files": []}, "not an object"),
    ({"network": {"inet stream,\n  /** rwix": entry()}}, "not 'FAMILY TYPE'"),
    ({"network": {"inet": entry()}}, "not 'FAMILY TYPE'"),
    ({"capabilities": {"sys_admin,\n  /** rwix": entry()}}, "unknown capability"),
    ({"capabilities": {"CAP_CHOWN": entry()}}, "unknown capability"),
    ({"files_traced": "yes"}, "'files_traced'"),
])
def test_malformed_sections_are_reported_not_rendered(change: dict[str, Any], why: str) -> None:
    p = traced()
    p.update(change)
    with pytest.raises(SyscageError, match=re.escape(why)) as caught:
        render(p)
    assert "profile web is corrupt" in str(caught.value)


# --- determinism ------------------------------------------------------------------------------------------

def test_same_observations_render_byte_identical_text() -> None:
    files = {f"/usr/lib/lib{i}.so": entry("rm", f"c{i % 3}", f"2026-01-0{i % 9 + 1}T00:00:00Z") for i in range(30)}
    files |= {"/proc/42/status": entry("r"), "/tmp/ab12CD": entry("cw"), "/bin/sh": entry("rx")}
    network = {"unix stream": entry(), "inet dgram": entry(), "inet6 stream": entry()}
    caps = {"setuid": entry(), "chown": entry(), "kill": entry()}
    a = traced(files, network, caps)
    b = traced(dict(reversed(files.items())), dict(reversed(network.items())), dict(reversed(caps.items())))
    b.update(revision=7, updated="2030-01-01T00:00:00Z", runs_total=99)  # bookkeeping only
    text = rendered(a)
    assert text == rendered(b) == rendered(copy.deepcopy(a))
    assert "2026-" not in text  # no timestamps
    lines = rule_lines(text, "files")
    assert lines == sorted(lines)


# --- docker-default parts, name, flags --------------------------------------------------------------------

def test_profile_keeps_docker_default_denials_and_flags() -> None:
    for profile in (new_profile("web", "SCMP_ARCH_X86_64", "t"), traced({"/bin/ls": entry("rx")})):
        text = rendered(profile)
        assert 'profile "syscage-web" flags=(attach_disconnected,mediate_deleted) {' in text
        for rule in ("deny @{PROC}/sysrq-trigger rwklx,", "deny @{PROC}/kcore rwklx,", "deny mount,",
                     "deny @{PROC}/sys/[^k]** w,", "deny /sys/firmware/** rwklx,",
                     "deny /sys/kernel/security/** rwklx,", "deny network alg,"):
            assert f"\n  {rule}" in text
        for rule, _ in DOCKER_DEFAULT_DENIES:
            assert f"\n  {rule}" in text
        assert '\n  signal (send,receive) peer="syscage-web",\n' in text
        assert "\n  signal (receive) peer=runc,\n" in text


def test_untraced_sections_are_confined_as_docker_default() -> None:
    p = new_profile("web", "SCMP_ARCH_X86_64", "t")
    p["files"] = {"/etc/hosts": entry("r")}  # learned by some runs, but not every run traced files
    text = rendered(p)
    assert "\n  file,\n" in text and "\n  network,\n" in text and "\n  capability,\n" in text
    assert "/etc/hosts" not in text and "(1 learned entries not used)" in text


def test_traced_sections_allow_only_what_was_learned() -> None:
    text = rendered(traced({"/bin/ls": entry("rmx")}, {"inet stream": entry()}, {"chown": entry()}))
    assert "\n  file,\n" not in text and "\n  network,\n" not in text and "\n  capability,\n" not in text
    assert rule_lines(text, "network") == ["  network inet stream,  # first needed by run c1"]
    assert rule_lines(text, "capabilities") == ["  capability chown,  # first needed by run c1"]


@pytest.mark.parametrize("name", ["a", "0", "k8s.team-a.web_1", "a" * 128, "a..b", "x-", "9._-"])
def test_every_valid_profile_name_is_accepted_by_the_parser(name: str) -> None:
    text = rendered(traced({"/bin/sh": entry("rx")}, name=name))
    assert f'profile "syscage-{name}" flags=' in text


def test_invalid_profile_name_is_refused() -> None:
    p = traced()
    p["name"] = 'x" {\n'
    with pytest.raises(SyscageError, match="invalid profile name"):
        render(p)


# --- capabilities -----------------------------------------------------------------------------------------

def test_untraced_capabilities_take_the_spec_bounding_set() -> None:
    p = new_profile("web", "SCMP_ARCH_X86_64", "t")
    text = rendered(p, ["CAP_NET_BIND_SERVICE", "CAP_KILL", "cap_chown", "CAP_KILL"])
    lines = text.splitlines()
    start = lines.index("  # capabilities: not traced by every run; the spec's bounding set")
    assert lines[start + 1:start + 4] == ["  capability chown,", "  capability kill,", "  capability net_bind_service,"]
    assert "\n  capability,\n" not in text
    assert "\n  capability " not in rendered(p, [])  # an empty bounding set: no capability at all


def test_traced_capabilities_ignore_the_bounding_set() -> None:
    text = rendered(traced(caps={"setuid": entry()}), ["CAP_CHOWN"])
    assert rule_lines(text, "capabilities") == ["  capability setuid,  # first needed by run c1"]


def test_traced_capabilities_none_used_means_none_allowed() -> None:
    text = rendered(traced())
    assert rule_lines(text, "capabilities") == []
    assert "\n  capability" not in text


def test_unknown_capability_in_bounding_set_is_refused() -> None:
    with pytest.raises(SyscageError, match="unknown capability 'CAP_BOGUS'"):
        render(new_profile("web", "SCMP_ARCH_X86_64", "t"), ["CAP_CHOWN", "CAP_BOGUS"])


# --- the parser check -------------------------------------------------------------------------------------

def test_parser_rejection_raises_with_the_parsers_message() -> None:
    with pytest.raises(SyscageError, match=r"rejected the rendered profile: .*Conflict 'a' and 'w'.*syscage bug"):
        check("profile t {\n  /x wa,\n}\n")


def test_rules_the_features_cannot_enforce_are_errors(tmp_path: Path) -> None:
    """Against a feature set without network mediation a network rule would be dropped silently."""
    features = tmp_path / "features"
    features.write_text(re.sub(r"network_v8 \{af_mask \{[^}]*\}\s*\}\s*", "", FEATURES.read_text()))
    text = render(traced(network={"inet stream": entry()}))
    check(text)
    with pytest.raises(SyscageError, match="rejected"):
        check(text, features=features)


def test_missing_parser_is_one_clear_line() -> None:
    with pytest.raises(SyscageError, match="apparmor_parser-missing not found"):
        check("profile t {}\n", parser="apparmor_parser-missing")


def test_hanging_parser_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parser = tmp_path / "parser"
    parser.write_text("#!/bin/sh\nexec sleep 30\n")
    parser.chmod(0o755)
    monkeypatch.setattr(apparmor, "CHECK_TIMEOUT", 0.2)
    with pytest.raises(SyscageError, match=r"did not check a profile within 0\.2 s"):
        check("profile t {}\n", parser=str(parser))


def test_render_checked_does_not_return_rejected_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apparmor, "render", lambda profile, bounding=None: "profile t {\n  /x wa,\n}\n")
    with pytest.raises(SyscageError, match="rejected"):
        render_checked(traced())


# --- the CLI ----------------------------------------------------------------------------------------------

def test_cli_prints_the_checked_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[paths]\nstore = "{tmp_path / "store"}"\n')
    monkeypatch.setenv("SYSCAGE_CONFIG", str(config))
    profile = traced({"/bin/ls": entry("rmx"), "/tmp/a b": entry("r")}, caps={"chown": entry()})
    (tmp_path / "store/profiles/web").mkdir(parents=True)
    (tmp_path / "store/profiles/web/profile.json").write_bytes(dump_json(profile))
    assert main(["apparmor", "web"]) == 0
    assert capsys.readouterr().out == render(profile)

    untraced = new_profile("db", "SCMP_ARCH_X86_64", "t")
    (tmp_path / "store/profiles/db").mkdir()
    (tmp_path / "store/profiles/db/profile.json").write_bytes(dump_json(untraced))
    assert main(["apparmor", "db", "--bounding", "CAP_KILL,CAP_CHOWN"]) == 0
    assert capsys.readouterr().out == render(untraced, ["CAP_KILL", "CAP_CHOWN"])

    assert main(["apparmor", "nope"]) == 1
    assert "no profile named nope" in capsys.readouterr().err
