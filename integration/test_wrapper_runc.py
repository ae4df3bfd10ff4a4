"""syscage-runtime in front of real runc: it finds the bundle however runc is called, and passes
everything else through untouched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from integration.env import VENV_BIN, Env, allow_all_seccomp, write_config
from syscage.markers import marker_path, write_marker

WRAPPER = str(VENV_BIN / "syscage-runtime")


def call(*args: str, cwd: Path | None = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run and capture via files, not pipes: a created container holds its stdio open until it exits."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        result = subprocess.run(list(args), stdout=out, stderr=err, cwd=cwd, timeout=60, check=False,
                                stdin=subprocess.DEVNULL, env=env)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(result.args, result.returncode, out.read(), err.read())


def learning_bundle(env: Env, profile: str, args: list[str]) -> Path:
    return env.bundle(args, learn=False, seccomp=None,
                      annotations={"io.syscage.mode": "learn", "io.syscage.profile": profile})


def test_create_with_global_flags_and_equals_bundle(env: Env) -> None:
    name, cid = env.name("argv-create"), env.name("c")
    bundle = learning_bundle(env, name, ["true"])
    log, pid_file = env.root / f"{cid}.log", env.root / f"{cid}.pid"
    created = call(WRAPPER, "--root", str(env.runc_root), "--log", str(log), "--log-format", "json", "create",
                   f"--bundle={bundle}", "--pid-file", str(pid_file), cid, cwd=env.root)
    assert created.returncode == 0, created.stderr
    assert created.stdout == ""
    spec = json.loads((bundle / "config.json").read_text())
    (relay,) = spec["hooks"]["prestart"]  # the relay: a shell one-liner syscage-runtime answers
    assert relay["path"] == "/bin/sh" and relay["args"][-2].startswith(str(env.run_dir / "relay"))
    assert "poststop" not in spec["hooks"]
    assert spec["linux"]["seccomp"] == allow_all_seccomp()
    assert pid_file.exists()
    state = call(WRAPPER, "--root", str(env.runc_root), "state", cid)
    plain = call("runc", "--root", str(env.runc_root), "state", cid)
    assert state.returncode == 0 and state.stdout == plain.stdout  # passthrough stdout is runc's own
    assert call(WRAPPER, "--root", str(env.runc_root), "start", cid).returncode == 0
    _wait_stopped(env, cid)
    assert call(WRAPPER, "--root", str(env.runc_root), "delete", cid).returncode == 0
    assert env.profile(name)["runs"][0]["container_id"] == cid


def test_create_records_the_run_at_delete_without_a_poststop_hook(env: Env) -> None:
    """The containerd path (create, start, delete): the run is recorded by syscage-runtime's delete, once the
    runtime has really deleted the container; a delete that fails leaves the marker for the next one."""
    name, cid = env.name("at-delete"), env.name("c")
    bundle = learning_bundle(env, name, ["sh", "-c", "cat /proc/self/status >/dev/null; sleep 30"])
    root = ["--root", str(env.runc_root)]
    assert call(WRAPPER, *root, "create", "--bundle", str(bundle), cid).returncode == 0
    spec = json.loads((bundle / "config.json").read_text())
    (prestart,) = spec["hooks"]["prestart"]
    assert prestart["path"] == "/bin/sh" and "poststop" not in spec["hooks"]
    marker = marker_path(str(env.run_dir), str(env.runc_root), cid)
    assert marker and json.loads(Path(marker).read_text())["profile"] == name
    assert call(WRAPPER, *root, "start", cid).returncode == 0
    watching = [json.loads(line) for line in env.log_file.read_text().splitlines() if '"watching"' in line]
    assert [e["via"] for e in watching if e["container_id"] == cid] == ["relay"]
    assert not list((env.run_dir / "relay").iterdir())  # the relay cleans up after itself
    refused = call(WRAPPER, *root, "delete", cid)  # still running, no --force: runc refuses
    assert refused.returncode != 0 and "running" in refused.stderr
    assert Path(marker).exists() and not (env.store / "profiles" / name / "profile.json").exists()
    (pending,) = (env.store / "profiles" / name / "pending").iterdir()  # the run's durable trace while it runs
    assert json.loads(pending.read_text())["container_id"] == cid
    deleted = call(WRAPPER, *root, "delete", "--force", cid)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout == ""
    assert not Path(marker).exists() and not pending.exists()
    assert call("runc", *root, "state", cid).returncode != 0  # really deleted
    profile = env.profile(name)
    assert [r["container_id"] for r in profile["runs"]] == [cid]
    assert profile["complete"]
    assert {"execve", "openat", "read"} <= set(profile["syscalls"])
    assert {"nanosleep", "clock_nanosleep"} & set(profile["syscalls"])
    assert call(WRAPPER, *root, "delete", cid).returncode != 0  # a second delete records nothing more
    assert len(env.profile(name)["runs"]) == 1


def test_run_with_short_and_relative_bundle(env: Env) -> None:
    short, relative = env.name("argv-short"), env.name("argv-rel")
    b1 = learning_bundle(env, short, ["true"])
    assert call(WRAPPER, "--root", str(env.runc_root), "run", "-b", str(b1), env.name("c")).returncode == 0
    b2 = learning_bundle(env, relative, ["true"])
    result = call(WRAPPER, "--root", str(env.runc_root), "run", "--bundle", b2.name, env.name("c"), cwd=b2.parent)
    assert result.returncode == 0, result.stderr
    assert len(env.profile(short)["runs"]) == 1 and len(env.profile(relative)["runs"]) == 1


def test_unknown_subcommands_and_flags_pass_through(env: Env) -> None:
    for args in (["no-such-command"], ["--version"], ["state", "no-such-container"], ["--bogus-flag", "list"]):
        wrapped, plain = call(WRAPPER, "--root", str(env.runc_root), *args), \
            call("runc", "--root", str(env.runc_root), *args)
        assert (wrapped.returncode, wrapped.stdout) == (plain.returncode, plain.stdout), args
        assert _strip_time(wrapped.stderr) == _strip_time(plain.stderr), args


def test_hostile_annotation_refused_by_wrapper(env: Env) -> None:
    bundle = env.bundle(["true"], learn=False, annotations={"io.syscage.mode": "learn",
                                                           "io.syscage.profile": "../../etc/x"})
    before = (bundle / "config.json").read_bytes()
    result = call(WRAPPER, "--root", str(env.runc_root), "run", "-b", str(bundle), env.name("c"))
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1 and "invalid profile name" in result.stderr
    assert (bundle / "config.json").read_bytes() == before


def test_enforce_with_runc_directly(env: Env) -> None:
    name = env.name("wrap-enforce")
    assert call(WRAPPER, "--root", str(env.runc_root), "run", "-b",
                str(learning_bundle(env, name, ["sh", "-c", "echo hi"])), env.name("c")).returncode == 0
    enforced = env.bundle(["sh", "-c", "echo hi; mkdir /tmp/d"], learn=False, seccomp=None,
                          annotations={"io.syscage.mode": "enforce", "io.syscage.profile": name})
    result = call(WRAPPER, "--root", str(env.runc_root), "run", "-b", str(enforced), env.name("c"))
    assert result.stdout == "hi\n" and "Operation not permitted" in result.stderr
    spec = json.loads((enforced / "config.json").read_text())
    assert spec["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    # No learn hooks; only the shell one-liner that notes the container's pid for `syscage denials`.
    assert [h["args"][3] for h in spec["hooks"]["prestart"]] == ["syscage-denials-note"] and set(spec["hooks"]) == \
        {"prestart"} and "apparmorProfile" not in spec["process"]
    assert "flags" not in spec["linux"]["seccomp"]  # runc 1.1.5 refuses seccomp flags
    assert json.loads((enforced / ".syscage-own-seccomp.json").read_text())["own"] is None  # the bundle had none
    # The same bundle, switched to learn: it learns under its own (no) filter, not the enforced one.
    spec["annotations"]["io.syscage.mode"] = "learn"
    (enforced / "config.json").write_text(json.dumps(spec))
    relearned = call(WRAPPER, "--root", str(env.runc_root), "run", "-b", str(enforced), env.name("c"))
    assert relearned.returncode == 0 and relearned.stdout == "hi\n", relearned.stderr
    assert "mkdir" in env.profile(name)["syscalls"]
    assert json.loads((enforced / "config.json").read_text())["linux"]["seccomp"] == allow_all_seccomp()
    assert not (enforced / ".syscage-own-seccomp.json").exists()  # put back, so forgotten


def _wait_stopped(env: Env, cid: str) -> None:
    deadline = time.monotonic() + 30
    while '"status": "stopped"' not in call("runc", "--root", str(env.runc_root), "state", cid).stdout:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def _strip_time(text: str) -> str:
    return "\n".join(line.split(" msg=", 1)[-1] for line in text.splitlines())


def test_malformed_spec_section_refused_in_one_line(env: Env) -> None:
    bundle = learning_bundle(env, env.name("malformed"), ["true"])
    spec = json.loads((bundle / "config.json").read_text())
    spec["hooks"] = {"prestart": "not-a-list"}
    (bundle / "config.json").write_text(json.dumps(spec))
    result = call(WRAPPER, "--root", str(env.runc_root), "run", "-b", str(bundle), env.name("c"))
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1 and "malformed section" in result.stderr


@pytest.mark.parametrize("policy", ["run", "fail"])
def test_relayed_prestart_follows_on_tracer_error(env: Env, policy: str) -> None:
    """The relay applies learn.on_tracer_error like the hook: here no tracer can answer in time."""
    root = env.root / env.name("slow-tracer")
    root.mkdir()
    config = root / "config.toml"
    write_config(config, root, learn={"on_tracer_error": policy}, tracer={"start_timeout": 0.01, "idle_timeout": 5})
    name, cid = env.name("relay-untraced"), env.name("c")
    bundle = learning_bundle(env, name, ["true"])
    runc_root = ["--root", str(env.runc_root)]
    environment = {**os.environ, "SYSCAGE_CONFIG": str(config)}
    try:
        runtime_log = root / "runc.log"
        created = call(WRAPPER, *runc_root, "--log", str(runtime_log), "--log-format", "json", "create", "--bundle",
                       str(bundle), cid, env=environment)
        marker = marker_path(str(root / "run"), str(env.runc_root), cid)
        assert marker
        if policy == "fail":
            assert created.returncode != 0
            assert "tracer did not answer" in created.stderr
            # containerd shows the runtime's last error line from its --log (its stderr is the container's):
            # runc's own line there carries the reason the hook printed
            errors = [json.loads(line) for line in runtime_log.read_text().splitlines()]
            assert "tracer did not answer" in [e for e in errors if e.get("level") == "error"][-1]["msg"]
            assert call("runc", *runc_root, "state", cid).returncode != 0  # no container
            assert not Path(marker).exists()
            return
        assert created.returncode == 0, created.stderr
        assert "runs untraced" in created.stderr
        assert call(WRAPPER, *runc_root, "start", cid, env=environment).returncode == 0
        _wait_stopped(env, cid)
        assert call(WRAPPER, *runc_root, "delete", cid, env=environment).returncode == 0
        profile = json.loads((root / "store" / "profiles" / name / "profile.json").read_text())
        assert profile["complete"] is False and profile["runs"][0]["container_id"] == cid
    finally:
        _stop_tracer_of(root / "run")


def _stop_tracer_of(run_dir: Path) -> None:
    """The tracer the wrapper started in the background for a private config (it may still be compiling)."""
    for _ in range(100):
        try:
            pid = int((run_dir / "tracer.pid").read_text())
            os.kill(pid, signal.SIGTERM)
            return
        except (FileNotFoundError, ValueError, ProcessLookupError):
            time.sleep(0.1)


def test_a_bundle_reused_after_a_learning_create(env: Env) -> None:
    """Hooks a learning create wrote stay in the bundle: a later run without syscage (the relay's FIFOs long
    gone) still works, and a later learning create replaces them instead of piling them up."""
    name = env.name("reuse")
    bundle = learning_bundle(env, name, ["true"])
    root = ["--root", str(env.runc_root)]
    for _ in range(2):
        cid = env.name("c")
        assert call(WRAPPER, *root, "create", "--bundle", str(bundle), cid).returncode == 0
        spec = json.loads((bundle / "config.json").read_text())
        assert len(spec["hooks"]["prestart"]) == 1 and "poststop" not in spec["hooks"]
        assert call(WRAPPER, *root, "start", cid).returncode == 0
        _wait_stopped(env, cid)
        assert call(WRAPPER, *root, "delete", cid).returncode == 0
    assert env.profile(name)["runs_total"] == 2
    spec = json.loads((bundle / "config.json").read_text())
    del spec["annotations"]["io.syscage.mode"]
    (bundle / "config.json").write_text(json.dumps(spec))
    plain = call("runc", *root, "run", "--bundle", str(bundle), env.name("c"))
    assert plain.returncode == 0, plain.stderr  # the stale relay hook does nothing
    wrapped = call(WRAPPER, *root, "run", "--bundle", str(bundle), env.name("c"))  # through syscage, now off
    assert wrapped.returncode == 0, wrapped.stderr
    assert "hooks" not in json.loads((bundle / "config.json").read_text())  # cleared of the earlier run's hooks


def test_a_stale_marker_records_nothing(env: Env) -> None:
    """A marker left by a crash, for a container that does not exist: delete neither records nor fails."""
    name, cid = env.name("stale"), env.name("c")
    marker = marker_path(str(env.run_dir), str(env.runc_root), cid)
    assert marker
    write_marker(marker, cid, str(env.runc_root), name, "learn", str(env.run_dir / "tracer.sock"), 30)
    wrapped = call(WRAPPER, "--root", str(env.runc_root), "delete", "--force", cid)
    plain = call("runc", "--root", str(env.runc_root), "delete", "--force", cid)
    assert wrapped.returncode == plain.returncode
    assert not Path(marker).exists() and not (env.store / "profiles" / name).exists()
