"""Property: on generated TOML documents (10,000: every spelling of tables, keys and strings, comments,
other keys, broken lines), the wrappers' fast config reader returns what the real TOML parser reads,
or the defaults after a warning when the document is not TOML; what it caches reads back the same."""

from __future__ import annotations

import contextlib
import io
import tomllib

from hypothesis import given, settings
from hypothesis import strategies as st

from syscage.shim import fastconfig

TABLES = {"runtime": ["path", "hook_path"], "paths": ["run_dir", "store"], "tracer": ["idle_timeout"]}


def spelled(name: str) -> list[str]:
    return [name, f'"{name}"', f"'{name}'", f'"{name[0]}\\u00{ord(name[1]):02x}{name[2:]}"']


NAMES = sorted({*TABLES, *(k for keys in TABLES.values() for k in keys)})
SPELLINGS = {name: st.sampled_from(spelled(name)) for name in NAMES}  # built once: strategies are not free
HEADERS = {table: st.sampled_from([f"[{a}{s}{b}]" for s in spelled(table) for a in ("", " ", "\t") for b in ("", " ")])
           for table in TABLES}
KINDS = st.sampled_from(["header", "key", "dotted", "inline", "comment", "blank", "junk"])
TABLE_AND_KEY = st.sampled_from([(t, k) for t, keys in TABLES.items() for k in keys])
COMMENTS = st.sampled_from(["# [runtime]", "#path = '/x'", "  # runtime.path = \"/x\""])
JUNK = st.sampled_from(["= x", "[runtime", "path = ", "[[runtime]]", "runtime.path.x = 1"])
DOTS = st.sampled_from([".", " . "])
TRAILERS = st.sampled_from(["", " # c"])


values = st.sampled_from([
    '"/usr/bin/crun"', "'/usr/bin/crun'", '"""/usr/bin/crun"""', "'''/opt/runc'''", '"/run/x"', '"crun"', '""',
    '"/a\\nb"', '"/usr/bin/\\u0063run"', "5", "true", '["/x"]', '{ x = "/y" }', '"/unterminated', "'/a' # note",
    '"""\n/usr/bin/crun"""',
])


@st.composite
def documents(draw: st.DrawFn) -> str:
    lines: list[str] = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(KINDS)
        table, key = draw(TABLE_AND_KEY)
        if kind == "header":
            lines.append(draw(HEADERS[table]) + draw(TRAILERS))
        elif kind == "key":
            lines.append(f"{draw(SPELLINGS[key])} = {draw(values)}")
        elif kind == "dotted":
            lines.append(f"{draw(SPELLINGS[table])}{draw(DOTS)}{draw(SPELLINGS[key])} = {draw(values)}")
        elif kind == "inline":
            lines.append(f"{draw(SPELLINGS[table])} = {{ {draw(SPELLINGS[key])} = {draw(values)} }}")
        elif kind == "comment":
            lines.append(draw(COMMENTS))
        elif kind == "blank":
            lines.append("")
        else:
            lines.append(draw(JUNK))
    return "\n".join(lines) + draw(TRAILERS.map(lambda t: "\n" if t else ""))


def expected(text: str) -> dict[tuple[str, str], str] | None:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None
    out = {}
    for (table, key), default in fastconfig.DEFAULTS.items():
        section = doc.get(table)
        value = section.get(key) if isinstance(section, dict) else None
        out[(table, key)] = value if isinstance(value, str) and value.startswith("/") else default
    return out


@settings(max_examples=10_000, deadline=None)
@given(documents())
def test_the_fast_reader_agrees_with_tomllib_or_falls_back(text: str) -> None:
    with contextlib.redirect_stderr(io.StringIO()) as err:
        got = fastconfig._parse("config.toml", text.encode())
    assert got == expected(text), text
    if got is None:
        assert "cannot parse config.toml" in err.getvalue()
        return
    body = f"{got[('runtime', 'path')]}\n{got[('paths', 'run_dir')]}\n"
    if body.count("\n") == 2:  # what read_keys caches
        assert fastconfig._from_cache(body) == got
