"""Boot Debian's own kernel once (integration/guest.py) and run every test of integration/realkernel/ in it.

What this host's kernel cannot show (AppArmor, kprobes) is tested there, as part of `make test`. A guest
that cannot boot is a failure with the reason, never a skip.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from integration.guest import LaneUnavailable, run_in_guest

CHECKOUT = Path(__file__).resolve().parent.parent


def test_real_kernel_lane(tmp_path: Path) -> None:
    results = tmp_path / "results"
    junit = results / "junit.xml"
    # The guest's clock (set from the host's at boot) marks when the command started: the rest is boot.
    command = (f"date +%s.%N > {results}/started; PYTHONDONTWRITEBYTECODE=1 {sys.executable} -m pytest "
               f"-p no:cacheprovider -q -ra -o junit_logging=system-out --durations=0 "
               f"--junitxml={junit} integration/realkernel > {results}/pytest.log 2>&1; "
               f"echo $? > {results}/rc")
    try:
        # The AppArmor learning tests start the tracer once in the guest: loading bcc and the BPF compile take
        # about a minute (idle) to several minutes (a loaded host) under emulation.
        run = run_in_guest(command, results, timeout=1500, cwd=CHECKOUT)
    except LaneUnavailable as exc:
        pytest.fail(f"real-kernel lane cannot boot: {exc}")
    log = (results / "pytest.log").read_text() if (results / "pytest.log").exists() else ""
    print(f"real-kernel lane: guest boot and tests took {run.seconds} s", _boot_seconds(results, run.started))
    print(log[-3000:])
    print(_captured(junit))
    if not junit.exists():
        pytest.fail(f"the guest ran no tests (vng exit {run.returncode}); its output:\n{run.output[-4000:]}\n{log}")
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    tests, failed = int(suite.get("tests", 0)), int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    assert tests > 0, log
    assert failed == 0 and (results / "rc").read_text().strip() == "0", log[-6000:]


def _boot_seconds(results: Path, started: float) -> str:
    try:
        return f"(boot {float((results / 'started').read_text()) - started:.0f} s)"
    except (OSError, ValueError):
        return "(the guest command never started)"


def _captured(junit: Path) -> str:
    """What the guest tests printed (figures such as the tracer's compile time), from the junit report."""
    try:
        root = ET.parse(junit).getroot()
    except (OSError, ET.ParseError):
        return ""
    printed = []
    for case in root.iter("testcase"):
        for out in case.iter("system-out"):
            lines = [line for line in (out.text or "").splitlines() if line.strip() and "Captured Out" not in line]
            if lines:
                printed.append(f"{case.get('name')}:\n" + "\n".join(lines))
    return "\n".join(printed)
