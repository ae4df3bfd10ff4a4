"""Profiles that leave their node: export (OCI seccomp JSON, kubelet's Localhost file, Security Profiles
Operator manifests, the node's profile.json) and import (merge node files, or start from an OCI seccomp JSON).

A profile that is incomplete or has not converged is refused by every enforceable format unless forced, and a
forced export says so: a profile shared with a cluster is never silently partial.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from syscage.config import Config
from syscage.errors import SyscageError
from syscage.store import ProfileStore, dump_json

FORMATS = ("oci", "kubelet", "spo", "profile")
KUBELET_ROOT = "/var/lib/kubelet"
KUBELET_DIR = "seccomp/syscage"  # under the kubelet root: localhostProfile is relative to <root>/seccomp
SPO_API = "security-profiles-operator.x-k8s.io"
PARTIAL_ANNOTATION = "syscage.io/partial"
_DNS_UNSAFE = re.compile(r"[^a-z0-9.-]+")


def readiness(config: Config, store: ProfileStore, name: str, profile: dict[str, Any]) -> list[str]:
    """Why the profile is not ready to be shared (empty: it is): incomplete, lost runs, or not converged."""
    from syscage.convergence import rule_of, state
    from syscage.liveness import live_instance
    from syscage.store import lost_now

    why = []
    if not profile["complete"]:
        why.append(f"incomplete ({'; '.join(profile['incomplete_reasons'][:2]) or 'see syscage show'})")
    lost = [p for p in store.pending(name) if lost_now(p, live_instance(config.run_dir))]
    if lost:
        why.append(f"{len(lost)} lost run(s)")
    if any(r.get("in_progress") for r in profile["runs"]):
        why.append("a container is still learning into it (its run is a checkpoint)")
    learning = state(profile, rule_of(config))
    if not learning.converged:
        why.append(f"learning has not converged ({learning.runs_since_new} quiet run(s) of {learning.rule.min_runs})")
    return why


def oci_seccomp(config: Config, profile: dict[str, Any]) -> dict[str, Any]:
    """The OCI seccomp object of the profile: the very rendering the store writes as seccomp.json."""
    from syscage.seccomp import render_profile

    return render_profile(profile, config.seccomp_errno, config.always_allow, config.coverage, config.never_allow)


def dns_name(name: str) -> str:
    """A Kubernetes object name (RFC 1123 subdomain) for a profile name."""
    out = _DNS_UNSAFE.sub("-", name.lower()).strip(".-")[:253].strip(".-")
    return out or "syscage-profile"


def spo_documents(name: str, seccomp: dict[str, Any], profile: dict[str, Any],
                  partial: list[str]) -> list[dict[str, Any]]:
    """A SeccompProfile (v1beta1) and, when the profile has AppArmor sections it traced, an AppArmorProfile
    (v1alpha1, the abstract form)."""
    annotations = {"syscage.io/profile": name, "syscage.io/revision": str(profile.get("revision", 0))}
    if partial:
        annotations[PARTIAL_ANNOTATION] = "; ".join(partial)
    meta = {"name": dns_name(name), "annotations": annotations}
    spec: dict[str, Any] = {"defaultAction": seccomp["defaultAction"], "architectures": seccomp["architectures"],
                            "syscalls": [spo_rule(r) for r in seccomp["syscalls"]]}
    if "defaultErrnoRet" in seccomp:
        spec["defaultErrnoRet"] = seccomp["defaultErrnoRet"]
    docs = [{"apiVersion": f"{SPO_API}/v1beta1", "kind": "SeccompProfile", "metadata": meta, "spec": spec}]
    abstract = apparmor_abstract(profile)
    if abstract is not None:
        docs.append({"apiVersion": f"{SPO_API}/v1alpha1", "kind": "AppArmorProfile",
                     "metadata": {**meta, "annotations": dict(annotations)}, "spec": {"abstract": abstract}})
    return docs


def spo_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """One OCI rule in SPO's form: its argument conditions and errno kept (SPO's syscall type has `args` and
    `errnoRet`; dropping a condition would turn a conditioned ALLOW into an unconditional one)."""
    out = {"action": rule["action"], "names": rule["names"]}
    if rule.get("args"):
        out["args"] = [{key: arg[key] for key in ("index", "value", "valueTwo", "op") if key in arg}
                       for arg in rule["args"]]
    if "errnoRet" in rule:
        out["errnoRet"] = rule["errnoRet"]
    return out


def apparmor_abstract(profile: dict[str, Any]) -> dict[str, Any] | None:
    """SPO's AppArmorProfile spec.abstract for what the profile traced; None if it traced none of it."""
    traced = [k for k in ("files", "network", "capabilities") if profile.get(f"{k}_traced")]
    if not traced:
        return None
    abstract: dict[str, Any] = {}
    if "files" in traced:
        ro, wo, rw = [], [], []
        for path, entry in sorted(profile.get("files", {}).items()):
            access = set(entry.get("access", []))
            reads, writes = "r" in access, bool(access & set("wacd"))
            (rw if reads and writes else wo if writes else ro).append(path)
        execs = sorted(p for p, e in profile.get("files", {}).items() if set(e.get("access", [])) & set("xm"))
        abstract["filesystem"] = {k: v for k, v in (("readOnlyPaths", ro), ("writeOnlyPaths", wo),
                                                    ("readWritePaths", rw)) if v}
        if execs:
            abstract["executable"] = {"allowedExecutables": execs}
    if "network" in traced:
        kinds = {k.split()[-1] for k in profile.get("network", {})}
        abstract["network"] = {"allowRaw": "raw" in kinds,
                               "allowedProtocols": {"allowTcp": "stream" in kinds, "allowUdp": "dgram" in kinds}}
    if "capabilities" in traced:
        caps = sorted(c.lower().removeprefix("cap_") for c in profile.get("capabilities", {}))
        abstract["capability"] = {"allowedCapabilities": caps}
    return abstract


def kubelet_snippet(name: str) -> str:
    return ("securityContext:\n  seccompProfile:\n    type: Localhost\n"
            f"    localhostProfile: syscage/{name}.json\n")


def export(config: Config, name: str, fmt: str, output: str | None, kubelet_root: str, force: bool) -> str:
    """Export profile NAME; returns what goes to stdout (the document, or what was written and how to use it)."""
    from syscage.atomic import write_atomically

    store = ProfileStore.from_config(config)
    profile = store.read(name)
    if profile is None:
        raise SyscageError(f"no profile named {name}", "list profiles with `syscage list`")
    partial = readiness(config, store, name, profile) if fmt != "profile" else []
    if partial and not force:
        raise SyscageError(f"not exporting profile {name}: {'; '.join(partial)}",
                           "learn more (or `syscage accept` it), or pass --force to export it marked partial")
    note = f"# PARTIAL (--force): {'; '.join(partial)}\n" if partial else ""
    if partial:  # also on stderr: an OCI JSON on stdout has nowhere to say it
        from syscage.console import say_warning

        say_warning(f"profile {name} exported PARTIAL (--force): {'; '.join(partial)}")
    if fmt == "kubelet":
        if output:
            raise SyscageError("--format kubelet writes under --kubelet-root, not -o", "drop -o")
        target = Path(kubelet_root) / KUBELET_DIR / f"{name}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(target, dump_json(oci_seccomp(config, profile)))
        return f"{note}# wrote {target}\n{kubelet_snippet(name)}"
    if fmt == "oci":
        text = json.dumps(oci_seccomp(config, profile), indent=2) + "\n"
    elif fmt == "spo":
        import yaml

        text = note + yaml.safe_dump_all(spo_documents(name, oci_seccomp(config, profile), profile, partial),
                                         sort_keys=False)
    else:  # profile: the node file `syscage import` merges; runs that name no node get this one's
        from syscage.profile_join import with_node

        text = dump_json(with_node(profile, config.node)).decode()
    if output and output != "-":
        write_atomically(output, text.encode())
        return f"{note}# wrote {output}\n" if note else ""
    return text


# -- import -----------------------------------------------------------------------------------------------

def read_input(path: str, name: str | None) -> dict[str, Any]:
    """One import file as a profile: a syscage profile.json (validated), or an OCI seccomp JSON (`name` needed)."""
    from syscage.profile_schema import KIND, check_profile

    try:
        doc = json.loads(Path(path).read_bytes())
    except OSError as exc:
        raise SyscageError(f"cannot read {path}: {exc.strerror or exc}", "check the path") from None
    except (ValueError, RecursionError) as exc:
        raise SyscageError(f"{path} is not valid JSON ({exc})", "export it again with `syscage export`") from None
    if isinstance(doc, dict) and doc.get("kind") == KIND:
        own = doc.get("name")
        if not isinstance(own, str):
            raise SyscageError(f"{path} is not a valid syscage profile: it has no name", "export it again")
        if name and own != name:
            raise SyscageError(f"{path} is profile {own!r}, not {name!r}", f"import it as {own}, or leave --name out")
        try:
            return check_profile(doc, own)
        except SyscageError as exc:
            raise SyscageError(f"{path}: {exc.what}", "export it again with --format profile") from None
    if isinstance(doc, dict) and isinstance(doc.get("defaultAction"), str):
        if not name:
            raise SyscageError(f"{path} is an OCI seccomp JSON: it names no profile", "pass --name NAME")
        return from_oci(doc, name, path)
    raise SyscageError(f"{path} is neither a syscage profile.json nor an OCI seccomp JSON",
                       "export it with `syscage export NAME --format profile`")


def from_oci(seccomp: dict[str, Any], name: str, path: str) -> dict[str, Any]:
    """A profile that allows what an OCI seccomp JSON allows without conditions: a starting point. Its one run
    names the file and the file's time, so the same file imports to the same profile every time."""
    from datetime import UTC, datetime

    from syscage.profile import new_profile
    from syscage.syscalls import native_arch, syscall_number

    if seccomp["defaultAction"] == "SCMP_ACT_ALLOW":
        raise SyscageError(f"{path} allows every syscall by default: not a starting point for a profile",
                           "import an allow-list (defaultAction SCMP_ACT_ERRNO or a kill action)")
    rules = seccomp.get("syscalls") or []
    if not isinstance(rules, list) or not all(isinstance(r, dict) and isinstance(r.get("names", []), list)
                                              for r in rules):
        raise SyscageError(f"{path}: 'syscalls' is not a list of rules", "fix the file")
    allowed = sorted({n for r in rules if r.get("action") == "SCMP_ACT_ALLOW" and not r.get("args")
                      for n in r.get("names", []) if isinstance(n, str) and syscall_number(n) is not None})
    when = datetime.fromtimestamp(int(Path(path).stat().st_mtime), UTC).isoformat(timespec="milliseconds")
    when = when.replace("+00:00", "Z")
    profile = new_profile(name, native_arch(), when)
    for syscall in allowed:
        profile["syscalls"][syscall] = {"first_seen": when, "last_seen": when, "runs": 1, "sources": ["imported"],
                                        "seen_runs": 0}
    profile["runs"] = [{"container_id": f"oci:{Path(path).name}", "node": "oci-file", "started": when,
                        "stopped": when, "cutover": "none", "syscall_count": len(allowed), "complete": True,
                        "problems": [], "imported_from": Path(path).name}]
    profile["runs_total"] = 1
    return profile


def import_files(config: Config, paths: list[str], name: str | None) -> tuple[str, bool, dict[str, Any]]:
    """Merge every file into its profile in the store; returns (profile, changed, merged). Every file is read
    and checked before anything is written; the write is one locked, atomic change."""
    from syscage.profile_join import JoinError, join, with_node

    docs = [(p, read_input(p, name)) for p in paths]
    names = {d["name"] for _, d in docs}
    if len(names) > 1:
        raise SyscageError(f"the files are of different profiles ({', '.join(sorted(names))})",
                           "import each profile's files separately")
    target = names.pop()
    store = ProfileStore.from_config(config)
    with store.locked(target):
        current = store.read(target)
        merged = with_node(current, config.node) if current is not None else None
        for path, doc in docs:
            try:
                merged = doc if merged is None else join(merged, doc)
            except JoinError as exc:
                raise SyscageError(f"cannot merge {path} into profile {target}: {exc}",
                                   "import files of the same architecture into one profile") from None
        assert merged is not None
        changed = merged != current
        if changed:
            store.write_merged(target, merged)
    return target, changed, merged
