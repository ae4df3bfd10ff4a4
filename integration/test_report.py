"""`syscage report` opened in headless Chromium (Debian's `chromium`): a screenshot, the chart in the DOM, and no
request leaving the page, for a profile learned for real.

Requests are read from Chromium's NetLog. The browser makes requests of its own (updates, accounts): the
page's are those whose network isolation key is the page's site (file://). A control page that loads an
image from 127.0.0.1 shows that this detector sees a page's request; the report with such an image planted in
it shows that its Content-Security-Policy stops one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from integration.conftest import VENV_BIN, Env

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
QUIET = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-sync",
         "--disable-component-update", "--no-first-run", "--disable-default-apps", "--disable-extensions",
         "--no-default-browser-check"]


def chromium(page: Path, work: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    profile = work / f"chromium-{len(list(work.glob('chromium-*')))}"
    return subprocess.run([CHROMIUM, *QUIET, f"--user-data-dir={profile}", *extra, page.as_uri()],
                          capture_output=True, text=True, timeout=180, check=False, stdin=subprocess.DEVNULL)


def page_requests(page: Path, work: Path) -> list[str]:
    """URLs the page itself asked the network for, from Chromium's NetLog."""
    netlog = work / f"netlog-{page.stem}.json"
    done = chromium(page, work, f"--log-net-log={netlog}", "--net-log-capture-mode=Everything", "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    log: dict[str, Any] = json.loads(netlog.read_text())
    types = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    return sorted({e["params"]["url"] for e in log["events"]
                   if types.get(e["type"]) == "URL_REQUEST_START_JOB" and "url" in (e.get("params") or {})
                   and "file://" in e["params"].get("network_isolation_key", "")})


def test_report_in_headless_chromium(env: Env) -> None:
    name = env.name("report")
    for args in (["ls", "/"], ["sh", "-c", "echo hi; cat /etc/passwd"], ["true"]):
        done = env.run(env.bundle(args, profile=name))
        assert done.returncode == 0, done.stderr
    work = env.root / env.name("report-out")
    work.mkdir()
    page = work / "report.html"
    made = subprocess.run([str(VENV_BIN / "syscage"), "report", name, "-o", str(page)], capture_output=True,
                          text=True, check=False, timeout=120)
    assert made.returncode == 0, made.stderr
    html = page.read_text()
    assert "default-src 'none'" in html and "<script" not in html

    dom = chromium(page, work, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert '<svg id="convergence-chart"' in dom.stdout
    assert dom.stdout.count('class="bar"') == 3  # one bar per run
    assert 'id="cve-table"' in dom.stdout and ">blocked<" in dom.stdout

    shot = work / "shot.png"
    done = chromium(page, work, f"--screenshot={shot}", "--window-size=1200,1600")
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000

    assert page_requests(page, work) == []

    control = work / "control.html"
    control.write_text('<html><body><img src="http://127.0.0.1:9/probe.png">x</body></html>')
    assert page_requests(control, work) == ["http://127.0.0.1:9/probe.png"]  # the detector sees a page's load
    planted = work / "planted.html"
    planted.write_text(html.replace("<h1>", '<img src="http://127.0.0.1:9/planted.png"><h1>', 1))
    assert page_requests(planted, work) == []  # the page's policy stops what escaping would have missed
