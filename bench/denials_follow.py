"""Time from a seccomp record to its line in `syscage denials --follow` (needs root).

A child loads a filter that logs mkdir (SCMP_ACT_LOG, as complain mode does) and calls it; the time from just
before the call to the follower printing the record's line is measured, over N rounds (median, max)."""

from __future__ import annotations

import json
import os
import select
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROUNDS = 20
CHILD = """
import os, sys, time, pyseccomp
f = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
f.add_rule(pyseccomp.LOG, "mkdir")
f.load()
sys.stdout.write(f"{time.time()}\\n"); sys.stdout.flush()
try:
    os.mkdir("/proc/nonexistent/x")
except OSError:
    pass
"""


def main(rounds: int = ROUNDS) -> None:
    syscage = Path(sys.executable).parent / "syscage"
    follower = subprocess.Popen([str(syscage), "denials", "--follow", "--json", "--all"], stdout=subprocess.PIPE,
                                text=True, bufsize=1)
    time.sleep(1.5)
    samples = []
    try:
        for _ in range(rounds):
            child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
            assert child.stdout is not None
            started, pid = float(child.stdout.readline()), None
            deadline = time.time() + 10
            while time.time() < deadline:
                ready, _, _ = select.select([follower.stdout], [], [], 0.5)
                if not ready:
                    continue
                row = json.loads(follower.stdout.readline())
                if row.get("syscall") == "mkdir" and row.get("pid") == child.pid:
                    samples.append(time.time() - started)
                    pid = row["pid"]
                    break
            child.wait()
            assert pid is not None, "no line for the record"
            time.sleep(0.6)  # printk's rate limit: 10 records per 5 s
    finally:
        follower.terminate()
        follower.wait()
    print(json.dumps({"rounds": len(samples), "median_ms": round(statistics.median(samples) * 1000, 1),
                      "max_ms": round(max(samples) * 1000, 1), "min_ms": round(min(samples) * 1000, 1)}))


if __name__ == "__main__":
    os.environ.setdefault("SYSCAGE_PLAIN", "1")
    main(int(sys.argv[1]) if len(sys.argv) > 1 else ROUNDS)
