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
    command = (f"PYTHONDONTWRITEBYTECODE=1 {sys.executable} -m pytest -p no:cacheprovider -q -ra "
               f"--junitxml={junit} integration/realkernel > {results}/pytest.log 2>&1; "
               f"echo $? > {results}/rc")
    try:
        # The AppArmor learning tests start the tracer once in the guest: its BPF compile takes from about half
        # a minute (idle) to five minutes (a loaded host) under emulation.
        run = run_in_guest(command, results, timeout=1500, cwd=CHECKOUT)
    except LaneUnavailable as exc:
        pytest.fail(f"real-kernel lane cannot boot: {exc}")
    log = (results / "pytest.log").read_text() if (results / "pytest.log").exists() else ""
    print(f"real-kernel lane: guest boot and tests took {run.seconds} s")
    print(log[-3000:])
    if not junit.exists():
        pytest.fail(f"the guest ran no tests (vng exit {run.returncode}); its output:\n{run.output[-4000:]}\n{log}")
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    tests, failed = int(suite.get("tests", 0)), int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    assert tests > 0, log
    assert failed == 0 and (results / "rc").read_text().strip() == "0", log[-6000:]
