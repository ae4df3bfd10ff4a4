"""Real programs learned and then enforced with argument conditions (syscage.arguments), through
syscage-runtime and runc: Debian's python3 and redis (the host's /usr bound in read-only), serving their
clients with no failure; the rendered filter is never looser than Docker's default where Docker conditions
arguments (clone, socket, personality). Prints the figures with -s."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from integration.env import Env
from integration.test_enforce_intersection import bundle
from integration.test_wrapper_runc import WRAPPER, call
from syscage.arguments import conditions, docker_forbids
from syscage.dockerdefault import ALLOWED, CONDITIONAL

REDIS = Path("/usr/bin/redis-check-rdb")  # Debian's redis-server is a link to it (it serves under any other name)
REDIS_TESTS = "set,get,incr,lpush,lpop"
REDIS_SCRIPT = f"""redis-server --port 0 --unixsocket /tmp/r.sock --save '' --appendonly no --daemonize yes \
  --pidfile /tmp/r.pid --logfile /tmp/r.log >/dev/null
for i in $(seq 100); do [ -S /tmp/r.sock ] && break; sleep 0.1; done
redis-benchmark -s /tmp/r.sock -n 2000 -c 8 -t {REDIS_TESTS} --csv | cut -d, -f1
redis-cli -s /tmp/r.sock set k v && redis-cli -s /tmp/r.sock get k
redis-cli -s /tmp/r.sock shutdown nosave
"""
PYTHON_SCRIPT = """
import os, socket, socketserver, subprocess, threading
class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline().upper())
server = socketserver.ThreadingUnixStreamServer("/tmp/echo.sock", Echo)
threading.Thread(target=server.serve_forever, daemon=True).start()
def ask(i, out):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect("/tmp/echo.sock"); s.sendall(b"hi %d\\n" % i); out[i] = s.makefile().readline().strip()
out = {}
threads = [threading.Thread(target=ask, args=(i, out)) for i in range(20)]
[t.start() for t in threads]; [t.join() for t in threads]
socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
print(sorted(out.values()) == sorted("HI %d" % i for i in range(20)), subprocess.run(["true"]).returncode)
server.shutdown()
"""


@pytest.fixture(scope="module")
def usr_rootfs(env: Env) -> Path:
    """The busybox rootfs with the host's /usr (bound in read-only by the bundle) and redis-server."""
    rootfs = env.root / "rootfs-usr"
    if not rootfs.exists():
        import shutil

        shutil.copytree(env.rootfs, rootfs, symlinks=True)
        for name in ("lib", "lib64"):
            if not (rootfs / name).exists():
                (rootfs / name).symlink_to(f"usr/{name}")
        (rootfs / "usr").mkdir(exist_ok=True)
        (rootfs / "bin" / "redis-server").symlink_to(REDIS)
    return rootfs


def run(env: Env, args: list[str], mode: str, name: str, rootfs: Path) -> list[str]:
    path = bundle(env, args, mode, name, None, rootfs)
    spec = json.loads((path / "config.json").read_text())
    spec["mounts"].append({"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro"]})
    spec["process"]["env"] = [*spec["process"].get("env", []), "PATH=/usr/bin:/bin"]
    (path / "config.json").write_text(json.dumps(spec))
    result = call(WRAPPER, "--root", str(env.runc_root), "run", "-b", str(path), env.name("c"))
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def figures(env: Env, label: str, name: str) -> dict[str, Any]:
    """What the rendered filter allows, beside Docker's default; and the property: never looser than Docker's
    where Docker conditions an argument, unless the workload used such a value (none of these do)."""
    profile, seccomp = env.profile(name), env.seccomp(name)
    allowed = {n for r in seccomp["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]}
    conditioned = {n for r in seccomp["syscalls"] if r.get("args") for n in r["names"]}
    docker = ALLOWED | set(CONDITIONAL)
    for docker_conditioned in ("clone", "socket", "personality"):
        if docker_conditioned in allowed:
            assert docker_conditioned in conditioned, f"{label}: {docker_conditioned} is unconditional"
            values = profile["arguments"][docker_conditioned]["values"]
            assert not [v for v in values if docker_forbids(docker_conditioned, int(v))]
    found = {"syscalls allowed": len(allowed), "conditioned": sorted(conditioned),
             "not in Docker's default": sorted(allowed - docker),
             "Docker allows, profile denies": len(ALLOWED - allowed),
             "conditions": {n: [json.dumps(a) for a in alts] for n, alts in conditions(profile).items()},
             "clone3": [r for r in seccomp["syscalls"] if r["names"] == ["clone3"]]}
    print(f"\n{label}: {json.dumps(found, indent=1)}")
    return found


@pytest.mark.skipif(not REDIS.exists(), reason="redis-tools is not installed")
def test_redis_learned_and_enforced_serves_its_clients(env: Env, usr_rootfs: Path) -> None:
    name = env.name("args-redis")
    expected = [f'"{t.upper()}"' for t in REDIS_TESTS.split(",")] + ["OK", "v"]
    for _ in range(2):
        out = run(env, ["sh", "-c", REDIS_SCRIPT], "learn", name, usr_rootfs)
        assert [line for line in out if line != '"test"'] == expected
    assert env.profile(name)["complete"], env.profile(name)["incomplete_reasons"]
    found = figures(env, "redis", name)
    assert {"socket", "clone"} <= set(found["conditioned"])
    for _ in range(2):
        out = run(env, ["sh", "-c", REDIS_SCRIPT], "enforce", name, usr_rootfs)
        assert [line for line in out if line != '"test"'] == expected


def test_python3_learned_and_enforced_serves_its_clients(env: Env, usr_rootfs: Path) -> None:
    name = env.name("args-python3")
    for _ in range(2):
        assert run(env, ["python3", "-c", PYTHON_SCRIPT], "learn", name, usr_rootfs) == ["True 0"]
    assert env.profile(name)["complete"], env.profile(name)["incomplete_reasons"]
    found = figures(env, "python3", name)
    assert {"socket", "clone"} <= set(found["conditioned"])
    for _ in range(2):
        assert run(env, ["python3", "-c", PYTHON_SCRIPT], "enforce", name, usr_rootfs) == ["True 0"]
