"""Operator output: tables and colour (rich) on a terminal, plain aligned text when piped.

Only the operator's CLI imports this module, and it imports rich only when stdout is a terminal: the
runtime wrapper and the hooks never get here (tests/test_output.py checks their start paths).
NO_COLOR (any value) or SYSCAGE_PLAIN=1 asks for plain text on a terminal too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

# Words that carry a verdict, and their colour on a terminal.
STYLES = {"ok": "green", "complete": "green", "no": "yellow", "FAIL": "bold red", "INCOMPLETE": "bold red",
          "CORRUPT": "bold red", "denied": "red", "logged": "yellow", "blocked": "green", "ALLOWED": "bold red"}


def fancy() -> bool:
    if os.environ.get("NO_COLOR") is not None or os.environ.get("SYSCAGE_PLAIN") == "1":
        return False
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None,
          right: Sequence[str] = ()) -> None:
    """Print rows under the column headers; `right` names the right-aligned (numeric) columns."""
    if fancy():
        from rich.table import Table
        from rich.text import Text

        t = Table(title=title, title_justify="left", header_style="bold", box=None, pad_edge=False)
        for col in columns:
            t.add_column(col, justify="right" if col in right else "left", overflow="fold")
        for row in rows:
            t.add_row(*(Text(str(cell), style=STYLES.get(str(cell), "")) for cell in row))
        _console().print(t)
        return
    if title:
        print(title)
    cells = [[str(c) for c in columns], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    for r in cells:
        parts = [cell.rjust(w) if columns[i] in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths,
                                                                                                           strict=True))]
        print("  ".join(parts).rstrip())


def line(text: str, style: str = "") -> None:
    """One line; on a terminal a leading verdict word (ok, FAIL, no, ...) or `style` gets its colour."""
    if not fancy():
        print(text)
        return
    from rich.text import Text

    word = text.split(" ", 1)[0].rstrip(":")
    out = Text(text)
    if style:
        out.stylize(style)
    elif word in STYLES:
        out.stylize(STYLES[word], 0, len(word))
    _console().print(out)


# -- terminal renderings of the commands whose plain text the scripts and tests read (used when fancy()) --


def list_table(rows: list[dict[str, Any]]) -> None:
    out = []
    for r in rows:
        if "error" in r:
            out.append((r["name"], "CORRUPT", "-", "-", "-", r["error"]))
            continue
        notes = [f"{r['lost_runs']} run(s) lost"] * bool(r["lost_runs"]) + \
            [f"{r['learning_now']} learning now"] * bool(r["learning_now"]) + \
            [f"{len(r['chance_dependent'])} chance-dependent syscall(s)"] * bool(r.get("chance_dependent"))
        learning = "converged" if r.get("converged") else "NOT converged"
        out.append((r["name"], "complete" if r["complete"] else "INCOMPLETE", r["syscalls"], r["runs"], learning,
                    r["updated"] + (f"  ({', '.join(notes)})" if notes else "")))
    table(("PROFILE", "STATUS", "SYSCALLS", "RUNS", "LEARNING", "UPDATED"), out, right=("SYSCALLS", "RUNS"))


def syscalls_table(profile: dict[str, Any], chance: frozenset[str] | set[str] = frozenset()) -> None:
    """The learned syscalls; `chance`: those flagged chance-dependent (syscage.convergence)."""
    from syscage.convergence import seen_runs

    table(("SYSCALL", "RUNS", "SEEN", "SOURCES", "FIRST SEEN", "LAST SEEN", "NOTE"),
          [(name, e["runs"], seen_runs(e), ",".join(e["sources"]), e["first_seen"], e["last_seen"],
            "chance-dependent" if name in chance else "")
           for name, e in sorted(profile["syscalls"].items())],
          title=f"syscalls ({len(profile['syscalls'])})", right=("RUNS", "SEEN"))


def runs_table(profile: dict[str, Any], title: str) -> None:
    rows = []
    for run in profile["runs"]:
        state = "ok" if run["complete"] else "INCOMPLETE"
        detail = "; ".join(run["problems"])
        if run.get("withheld"):
            detail = (detail + "; " if detail else "") + f"needed {', '.join(run['withheld'])}, withheld"
        rows.append((run["stopped"], run["container_id"], run["cutover"], run["syscall_count"], state, detail))
    table(("STOPPED", "CONTAINER", "CUTOVER", "SYSCALLS", "STATE", "DETAIL"), rows, title=title, right=("SYSCALLS",))


def diff_tables(result: dict[str, Any]) -> None:
    line(f"A = {result['a']}", "bold")
    line(f"B = {result['b']}", "bold")
    for key, title in (("only_a", "allowed by A, not by B"), ("only_b", "allowed by B, not by A"),
                       ("conditional", "allowed by both, but conditionally by one or both")):
        table(("SYSCALL", "A", "B"), [(e["syscall"], e["a"], e["b"]) for e in result[key]],
              title=f"{title} ({len(result[key])})")


def lint_table(name: str, findings: list[dict[str, Any]]) -> None:
    table(("SYSCALL", "RULE", "DETAIL", "FIRST NEEDED"),
          [(f["syscall"], f["rule"], f["detail"], f["where"]) for f in findings],
          title=f"profile {name}: {len(findings)} finding(s)")
