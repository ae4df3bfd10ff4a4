"""`syscage install kubernetes`: the committed manifests are its default rendering, and they hold the fields
Kubernetes requires (kubectl's client-side dry run needs a server for its resource mapping, so this is the
offline schema check)."""

from __future__ import annotations

from pathlib import Path

import yaml

from syscage import cli
from syscage.kubernetes import HOST_PATHS, Node, node_setup_script, render

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes" / "syscage.yaml"


def test_committed_manifests_are_the_default_rendering() -> None:
    assert DEPLOY.read_text() == render(Node()), "regenerate it: syscage install kubernetes > " + str(DEPLOY)


def test_manifests_have_what_kubernetes_requires(capsys) -> None:  # type: ignore[no-untyped-def]
    assert cli.main(["install", "kubernetes", "--image", "reg.example/syscage:1", "--namespace", "sec",
                     "--handler", "syscage-x"]) == 0
    namespace, daemonset, runtime_class = yaml.safe_load_all(capsys.readouterr().out)
    for doc in (namespace, daemonset, runtime_class):
        assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"]
    assert namespace["kind"] == "Namespace" and namespace["metadata"]["name"] == "sec"
    assert daemonset["apiVersion"] == "apps/v1" and daemonset["metadata"]["namespace"] == "sec"
    spec = daemonset["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    pod = spec["template"]["spec"]
    assert pod["hostPID"] is True
    (container,) = pod["containers"]
    assert container["image"] == "reg.example/syscage:1" and container["securityContext"]["privileged"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert len(volumes) == len(pod["volumes"])
    mounted = {m["mountPath"]: volumes[m["name"]]["hostPath"]["path"] for m in container["volumeMounts"]}
    for path in ("/etc/containerd", "/etc/syscage", "/var/lib/syscage", "/run", "/sys/kernel/debug", "/lib/modules",
                 "/usr/src"):
        assert mounted[path] == path
    assert set(HOST_PATHS) <= set(mounted)
    # The container runs the node set-up (the script integration/test_kubernetes.py runs), then the tracer.
    script = container["command"][-1]
    assert script.startswith(node_setup_script("syscage-x"))
    assert script.endswith("exec syscage-tracer --idle-timeout 0\n")
    assert runtime_class == {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
                             "metadata": {"name": "syscage-x"}, "handler": "syscage-x"}
    assert "--name syscage-x" in script  # the handler `syscage install containerd` writes is the RuntimeClass's
