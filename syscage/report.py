"""`syscage report`: one self-contained HTML page about a profile, for a reviewer or an auditor.

No scripts, no fonts, no images to fetch: inline CSS and an inline SVG chart drawn here, and a Content
Security Policy that forbids every load (default-src 'none'), so the page opens offline and can never
reach out. Everything that came from a container (ids, paths) is escaped.
"""

from __future__ import annotations

import html
from collections import Counter
from typing import Any

from syscage.config import Config

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:70rem;
color:#1d232a;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d8dee4}
.sub{color:#57606a}.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(11rem,1fr));gap:.6rem}
.card{border:1px solid #d8dee4;border-radius:6px;padding:.6rem .8rem}.card b{display:block;font-size:1.4rem}
.ok{color:#1a7f37}.bad{color:#cf222e}.warn{color:#9a6700}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:.25rem .5rem;
border-bottom:1px solid #eaeef2;vertical-align:top}th{background:#f6f8fa}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px}
.chips span{display:inline-block;margin:.15rem;padding:.05rem .45rem;border-radius:1rem;background:#f6f8fa;
border:1px solid #d8dee4;font-family:ui-monospace,monospace;font-size:12px}
ul.warn li{color:#9a6700}svg text{font:11px system-ui,sans-serif;fill:#57606a}
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def convergence(profile: dict[str, Any]) -> list[dict[str, Any]]:
    """Per kept run, oldest first: how many syscalls it added to the profile and the total after it. A syscall
    belongs to the run whose stop time is its first_seen (merge stamps a run's syscalls with its stop time);
    syscalls first seen before the oldest kept run are the starting total."""
    runs = sorted(profile.get("runs", []), key=lambda r: r.get("stopped", ""))
    first = Counter(e["first_seen"] for e in profile["syscalls"].values()
                    if set(e.get("sources", [])) - {"floor", "kernel", "denials"})
    if not runs:
        return []
    start = sum(n for when, n in first.items() if when < runs[0].get("stopped", ""))
    total, out = start, []
    skipped = max(0, int(profile.get("runs_total", len(runs))) - len(runs))
    for index, run in enumerate(runs):
        new = first.get(run.get("stopped", ""), 0)
        first.pop(run.get("stopped", ""), None)  # two runs stopped at the same ms: count once
        total += new
        out.append({"run": skipped + index + 1, "container_id": run.get("container_id", "?"), "new": new,
                    "total": total, "stopped": run.get("stopped", ""), "complete": run.get("complete", True)})
    return out


def chart_svg(points: list[dict[str, Any]], width: int = 900, height: int = 260) -> str:
    """Bars: syscalls new in each run; line: the profile's size after it."""
    if not points:
        return '<p class="sub">No run records kept: nothing to chart.</p>'
    left, right, top, bottom = 48, 48, 16, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(points)
    max_new = max(1, max(p["new"] for p in points))
    max_total = max(1, max(p["total"] for p in points))
    step = plot_w / n
    bar = max(1.0, step * 0.7)
    parts = [f'<svg id="convergence-chart" xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} '
             f'{height}" width="100%" aria-label="Syscalls learned per run">',
             f'<title>Syscalls learned per run: bars new in the run (left axis), line profile size (right axis)'
             f'</title><rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#d8dee4"/>']
    for frac in (0, 0.5, 1):
        y = top + plot_h * (1 - frac)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#eaeef2"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{round(max_new * frac)}</text>'
                     f'<text x="{left + plot_w + 6}" y="{y + 4:.1f}">{round(max_total * frac)}</text>')
    line = []
    for i, p in enumerate(points):
        x = left + i * step + (step - bar) / 2
        h = plot_h * p["new"] / max_new
        colour = "#0969da" if p["complete"] else "#cf222e"
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                     f'fill="{colour}"><title>run {p["run"]} ({esc(p["container_id"])}, {esc(p["stopped"])}): '
                     f'{p["new"]} new, {p["total"]} in total</title></rect>')
        line.append(f"{left + i * step + step / 2:.1f},{top + plot_h * (1 - p['total'] / max_total):.1f}")
    parts.append(f'<polyline points="{" ".join(line)}" fill="none" stroke="#1a7f37" stroke-width="2"/>')
    for i in sorted({0, n // 2, n - 1}):
        x = left + i * step + step / 2
        parts.append(f'<text x="{x:.1f}" y="{height - 18}" text-anchor="middle">run {points[i]["run"]}</text>')
    parts.append(f'<text x="{left}" y="{height - 3}">bars: syscalls new in the run (left axis)</text>'
                 f'<text x="{left + plot_w}" y="{height - 3}" text-anchor="end" fill="#1a7f37">line: syscalls in '
                 f'the profile (right axis)</text></svg>')
    return "".join(parts)


def verdict(points: list[dict[str, Any]]) -> str:
    if not points:
        return "no runs kept"
    last_new = max((i for i, p in enumerate(points) if p["new"]), default=None)
    quiet = len(points) - 1 - last_new if last_new is not None else len(points)
    if quiet >= 5:
        return f'<span class="ok">converged</span>: no new syscall in the last {quiet} runs'
    return (f'<span class="warn">still learning</span>: the last run that added syscalls was run '
            f'{points[last_new]["run"]}, {quiet} run(s) ago' if last_new is not None else "")


def _table(headers: list[str], rows: list[list[str]], ident: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table{f" id={chr(34)}{ident}{chr(34)}" if ident else ""}><thead><tr>{head}</tr></thead><tbody>{body}' \
           "</tbody></table>"


def build_report(profile: dict[str, Any], config: Config, denials: list[dict[str, Any]], denial_notes: list[str],
                 pending: list[dict[str, Any]] | None = None) -> str:
    from syscage import dockerdefault
    from syscage.review import CONFINE_CVE_SYSCALLS, describe_first, first_run, lint
    from syscage.seccomp import allowed_syscalls

    name = profile["name"]
    allowed = set(allowed_syscalls(profile, config.always_allow)) - set(config.never_allow)
    sources = Counter(s for e in profile["syscalls"].values() for s in e["sources"])
    points = convergence(profile)
    complete = profile["complete"] and not any(p.get("failed") or p.get("corrupt") for p in pending or [])
    out = [f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
           f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
           f'<meta name="viewport" content="width=device-width,initial-scale=1">'
           f"<title>syscage profile {esc(name)}</title><style>{STYLE}</style></head><body>",
           f"<h1>Profile <code>{esc(name)}</code></h1>",
           f'<p class="sub">{esc(profile["arch"])} · revision {esc(profile.get("revision", 0))} · created '
           f'{esc(profile.get("created", "?"))} · updated {esc(profile["updated"])}</p>']
    status = '<b class="ok">complete</b>' if complete else '<b class="bad">INCOMPLETE</b>'
    cards = [("status", status), ("syscalls allowed", f"<b>{len(allowed)}</b>"),
             ("runs recorded", f'<b>{esc(profile.get("runs_total", len(profile["runs"])))}</b>'),
             ("learning", f"<b>{verdict(points).split(':')[0] or '-'}</b>"),
             ("denials seen", f"<b>{sum(int(r.get('count', 0)) for r in denials)}</b>")]
    out.append('<h2 id="glance">At a glance</h2><div class="grid">' +
               "".join(f'<div class="card">{esc(label)}{value}</div>' for label, value in cards) + "</div>")
    out.append("<p>Syscall sources: " + ", ".join(f"{esc(k)} {v}" for k, v in sorted(sources.items())) + "</p>")

    out.append('<h2 id="convergence">Syscalls learned per run</h2>')
    out.append(f"<p>{verdict(points)}. Red bars: runs recorded incomplete.</p>" if points else "")
    out.append(chart_svg(points))

    warnings = [*profile.get("incomplete_reasons", []),
                *(f"pending run of {p.get('container_id', '?')} (learning now or lost)" for p in pending or []),
                *(f"run of {r.get('container_id')}: {'; '.join(r.get('problems', []))}" for r in profile["runs"]
                  if not r.get("complete", True) and not profile.get("incomplete_reasons")),
                *(f"unnamed syscall numbers (cannot be allowed): {', '.join(profile['unresolved_syscalls'])}"
                  for _ in [0] if profile.get("unresolved_syscalls"))]
    out.append('<h2 id="completeness">Completeness warnings</h2>')
    out.append('<ul class="warn">' + "".join(f"<li>{esc(w)}</li>" for w in warnings) + "</ul>" if warnings
               else '<p class="ok">None: every recorded run was complete.</p>')
    for accepted in profile.get("accepted", []):
        out.append(f'<p class="sub">Accepted as complete at {esc(accepted.get("at"))} despite: '
                   f'{esc("; ".join(accepted.get("reasons", [])) or "-")}</p>')

    out.append('<h2 id="docker">What Docker\'s default allows that this profile denies</h2>')
    if profile["arch"] == dockerdefault.ARCH:
        docker_only = sorted(dockerdefault.ALLOWED - allowed)
        conditional = sorted(set(dockerdefault.CONDITIONAL) - allowed)
        out.append(f"<p>{len(docker_only)} syscalls Docker's default seccomp profile allows are denied here "
                   f"(and {len(conditional)} it allows only under conditions).</p>")
        out.append('<div class="chips" id="docker-denied">' + "".join(f"<span>{esc(s)}</span>" for s in docker_only)
                   + "</div>")
        beyond = [f for f in lint(profile, config.always_allow, config.never_allow)
                  if f["rule"].startswith("docker-default")]
        if beyond:
            out.append("<p>Allowed here but not by Docker's default:</p>" + _table(
                ["syscall", "why", "first needed"],
                [[f"<code>{esc(f['syscall'])}</code>", esc(f["detail"]), esc(f["where"])] for f in beyond]))
    else:
        out.append(f"<p>Docker's default is shipped for {esc(dockerdefault.ARCH)} only.</p>")

    out.append('<h2 id="cve">CVE-linked syscalls (Confine study)</h2>')
    rows = []
    for syscall in CONFINE_CVE_SYSCALLS:
        if syscall in allowed:
            where = describe_first(first_run(profile, syscall)) if syscall in profile["syscalls"] else "the floor"
            rows.append([f"<code>{esc(syscall)}</code>", '<span class="bad">allowed</span>', esc(where)])
        else:
            rows.append([f"<code>{esc(syscall)}</code>", '<span class="ok">blocked</span>', ""])
    out.append(_table(["syscall", "here", "first needed by"], rows, "cve-table"))

    out.append('<h2 id="denials">Denials seen</h2>')
    if denials:
        out.append(_table(["last", "container", "mode", "syscall / access", "outcome", "count"],
                          [[esc(r["time"]), f'<span class="mono">{esc(r.get("container_id") or "?")}</span>',
                            esc(r.get("mode") or "-"),
                            f"<code>{esc(r.get('syscall') or (r.get('operation', '') + ' ' + r.get('path', '')))}"
                            "</code>", esc(r["outcome"]), esc(r["count"])] for r in denials], "denials-table"))
    else:
        out.append("<p>None recorded in the kernel's records.</p>")
    out.extend(f'<p class="warn">{esc(n)}</p>' for n in denial_notes)

    out.append('<h2 id="syscalls">Syscalls</h2>')
    out.append(_table(["syscall", "sources", "runs", "first seen", "last seen"],
                      [[f"<code>{esc(k)}</code>", esc(", ".join(e["sources"])), esc(e["runs"]), esc(e["first_seen"]),
                        esc(e["last_seen"])] for k, e in sorted(profile["syscalls"].items())], "syscall-table"))
    out.append('<p class="sub">Written by syscage. This page loads nothing: no scripts, no fonts, no images.</p>'
               "</body></html>\n")
    return "\n".join(out)
