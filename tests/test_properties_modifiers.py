"""Property: the spec modifiers take any JSON-like spec (10,000 generated) and either return a spec or
fail with the error types the wrapper turns into one line (TypeError, AttributeError); they never
change their input, and the ones meant to be idempotent are."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from syscage.compose import DENY_LOG, compose
from syscage.shim.modifiers import (
    HOOK_NAME,
    RELAY_TAG,
    add_hook,
    add_learn_hooks,
    apply,
    drop_syscage_hooks,
    ensure_filter_load,
    set_apparmor,
    set_seccomp,
)

HOOK_PATH = "/usr/local/bin/syscage-hook"
CLEAN = (TypeError, AttributeError)  # what shim/prepare.py reports as "a malformed section"

# Few draws per value (sampled_from rather than text or integers): hypothesis' own cost is per draw.
scalars = st.sampled_from([None, True, False, 0, -1, 7, "", "x", "path", "args", "prestart", "/x", "SCMP_ACT_ALLOW"])
keys = st.sampled_from(["", "x", "path", "args", "seccomp", "prestart", "defaultAction", "hooks"])
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                            st.dictionaries(keys, inner, max_size=3)),
                           max_leaves=4)
hook_args = st.lists(st.sampled_from([HOOK_NAME, "prestart", "poststop", "sh", "-c", "x", RELAY_TAG, "--prepared={}"]),
                     max_size=5)
hook_entries = st.one_of(
    st.fixed_dictionaries({"path": st.sampled_from([HOOK_PATH, "/bin/sh", "/x"])},
                          optional={"args": st.one_of(hook_args, json_values), "timeout": st.integers(0, 9),
                                    "env": st.lists(st.text(max_size=5), max_size=2)}),
    json_values)
phases = st.sampled_from(["prestart", "poststop", "createRuntime", "startContainer"])
hooks = st.one_of(st.dictionaries(phases, st.one_of(st.lists(hook_entries, max_size=2), json_values), max_size=2),
                  json_values)
seccomps = st.one_of(st.fixed_dictionaries({"defaultAction": st.sampled_from(["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO"])},
                                           optional={"syscalls": json_values, "defaultErrnoRet": st.integers(0, 5)}),
                     json_values)
linux = st.one_of(st.dictionaries(st.sampled_from(["seccomp", "namespaces", "x"]), st.one_of(seccomps, json_values),
                                  max_size=2), json_values)
specs = st.dictionaries(st.sampled_from(["hooks", "linux", "process", "annotations", "root", "ociVersion"]),
                        st.one_of(hooks, linux, json_values), max_size=3)
SECCOMP = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
           "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}
IDEMPOTENT = {
    "add_learn_hooks": add_learn_hooks(HOOK_PATH, 60, ["SYSCAGE_CONFIG=/c"]),
    "add_learn_hooks(prestart)": add_learn_hooks(HOOK_PATH, 60, [], ("prestart",), ("--prepared={}",)),
    "drop_syscage_hooks": drop_syscage_hooks,
    "ensure_filter_load": ensure_filter_load,
    "set_seccomp": set_seccomp(SECCOMP),
    "set_seccomp(complain)": set_seccomp(compose(SECCOMP, {"read", "write"}, DENY_LOG, "SCMP_ARCH_X86_64")),
    "set_apparmor": set_apparmor("syscage-web//&own"),
    "set_apparmor(None)": set_apparmor(None),
    "set_seccomp(None)": set_seccomp(None),
}
OTHERS = {"add_hook": add_hook("prestart", {"path": "/bin/sh", "args": ["sh", "-c", "true"]})}


def attempt(spec: dict[str, Any], modifiers: list[Any]) -> dict[str, Any] | None:
    before = copy.deepcopy(spec)
    try:
        out = apply(spec, modifiers)
    except CLEAN:
        out = None
    assert spec == before, "a modifier changed its input"
    if out is not None:
        assert isinstance(out, dict)
        json.dumps(out)  # still a JSON document
    return out


@settings(max_examples=10_000, deadline=None)
@given(specs, st.lists(st.sampled_from(sorted({**IDEMPOTENT, **OTHERS})), min_size=1, max_size=3))
def test_modifiers_are_pure_total_and_idempotent(spec: dict[str, Any], names: list[str]) -> None:
    chain = [{**IDEMPOTENT, **OTHERS}[n] for n in names]
    out = attempt(spec, chain)
    if out is None:
        return
    for name in set(names):
        if name in IDEMPOTENT:
            once = attempt(out, [IDEMPOTENT[name]])
            assert once is not None and attempt(once, [IDEMPOTENT[name]]) == once, name
    assert attempt(out, chain) is not None  # what the modifiers produced, they accept again
