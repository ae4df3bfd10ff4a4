"""Property: a profile.json, however damaged (10,000 generated: a real profile with parts replaced,
removed or added, or any JSON), is either refused as corrupt with one line or shown and listed by
`syscage show` (text and --json) and `syscage list` without any other exception."""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from syscage import cli
from syscage.config import Config
from syscage.errors import SyscageError
from syscage.profile import new_profile

# Few draws per value (sampled_from rather than text or integers): hypothesis' own cost is per draw.
scalars = st.sampled_from([None, True, False, 0, 1, -1, 250, 1.5, 1e300, "", "x", "seccomp", "a\nb", "{}", "%s"])
keys = st.sampled_from(["", "x", "runs", "name", "syscalls", "complete", "problems", "updated", "container_id"])
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                            st.dictionaries(keys, inner, max_size=3)),
                           max_leaves=5)


def base_profile() -> dict[str, Any]:
    profile = new_profile("web", "SCMP_ARCH_X86_64", "2026-01-01T00:00:00Z")
    profile["syscalls"] = {"read": {"first_seen": "a", "last_seen": "b", "runs": 2, "sources": ["observed"]},
                           "futex": {"first_seen": "a", "last_seen": "b", "runs": 1, "sources": ["runtime-base"]}}
    profile["unresolved_syscalls"] = {"999": {"first_seen": "a", "last_seen": "b", "runs": 1, "sources": []}}
    profile["runs"] = [{"container_id": "c1", "started": "s", "stopped": "t", "cutover": "seccomp", "runtime": "runc",
                        "kernel": "6.1", "pre_exec": ["read"], "counters": {"armed_map_full": 0}, "problems": ["lost"],
                        "complete": False, "syscall_count": 1}]
    profile.update(complete=False, incomplete_reasons=["run of c1: lost"], runs_total=7, revision=3)
    return profile


def paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            found += paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            found += paths(v, (*prefix, i))
    return found


ONE_IN_TEN, CHANGES = st.integers(0, 9), st.integers(1, 3)
ACTIONS = st.sampled_from(["replace", "replace", "remove", "add"])
KEYS = keys


@st.composite
def profiles(draw: st.DrawFn) -> Any:
    if draw(ONE_IN_TEN) == 0:
        return draw(json_values)
    doc = base_profile()
    for _ in range(draw(CHANGES)):
        places = paths(doc)[1:]
        where = places[draw(st.integers(0, len(places) - 1))]
        parent = doc
        for step in where[:-1]:
            parent = parent[step]
        action = draw(ACTIONS)
        if action == "replace":
            parent[where[-1]] = draw(json_values)
        elif action == "remove":
            del parent[where[-1]]
        elif isinstance(parent, dict):
            parent[draw(KEYS)] = draw(json_values)
        else:
            parent.append(draw(json_values))
    return doc


STORE = Path(tempfile.mkdtemp(prefix="syscage-profile-properties-"))
CONFIG = Config(store=STORE)


@settings(max_examples=10_000, deadline=None)
@given(profiles())
def test_a_damaged_profile_is_corrupt_or_shown(doc: Any) -> None:
    directory = STORE / "profiles" / "web"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "profile.json").write_text(json.dumps(doc))
    before = copy.deepcopy(doc)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            cli.cmd_show(CONFIG, argparse.Namespace(name="web", json=False))
            cli.cmd_show(CONFIG, argparse.Namespace(name="web", json=True))
        except SyscageError as exc:
            assert "\n" not in str(exc) and "profile web" in str(exc)
        cli.cmd_list(CONFIG, argparse.Namespace(json=False))
        cli.cmd_list(CONFIG, argparse.Namespace(json=True))
    assert doc == before
