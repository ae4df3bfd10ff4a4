"""`syscage install kubernetes`: a DaemonSet that sets syscage up on every node, and the RuntimeClass pods name.

The node set-up is one shell script (`node_setup_script`): the DaemonSet runs it with the node's paths, and
integration/test_kubernetes.py runs the very same function's script against a private containerd config,
so what the cluster runs is what the tests run. After it, the DaemonSet's container runs the tracer.
"""

from __future__ import annotations

import shlex
from typing import Any, NamedTuple

from syscage.install import DEFAULT_CONTAINERD_CONFIG, DEFAULT_RUNTIME_NAME

DEFAULT_IMAGE = "localhost/syscage:latest"
DEFAULT_NAMESPACE = "syscage-system"
IMAGE_LIB = "/usr/local/lib/syscage"  # `make install` in the image: the venv and the launchers' targets
COMMANDS = ("syscage", "syscage-hook", "syscage-tracer", "syscage-runtime", "containerd-shim-syscage-v2",
            "syscage-runtime-py", "containerd-shim-syscage-v2-py")
RESTART_CONTAINERD = "nsenter --target 1 --mount --uts --ipc --net --pid -- systemctl restart containerd"
# Host paths the DaemonSet mounts (at the same path in its container, but /usr/local: at /host/usr/local).
HOST_PATHS = ("/etc/containerd", "/etc/syscage", "/var/lib/syscage", "/run", "/sys/kernel/debug",
              "/sys/kernel/tracing", "/lib/modules", "/usr/src", "/var/log/syscage")


class Node(NamedTuple):
    image: str = DEFAULT_IMAGE
    namespace: str = DEFAULT_NAMESPACE
    handler: str = DEFAULT_RUNTIME_NAME
    via: str = "shim"


def node_setup_script(handler: str = DEFAULT_RUNTIME_NAME, via: str = "shim",
                      containerd_config: str = str(DEFAULT_CONTAINERD_CONFIG),
                      syscage_config: str = "/etc/syscage/config.toml",
                      shipped_config: str = f"{IMAGE_LIB}/config.toml", host_prefix: str = "/host/usr/local",
                      restart: str = RESTART_CONTAINERD) -> str:
    """The node's set-up, idempotent: syscage's commands onto the host, the config (never overwritten), the
    containerd runtime handler (`syscage install containerd --write`, containerd restarted only if it changed),
    then `syscage doctor`'s report."""
    q = shlex.quote
    links = " ".join(COMMANDS)
    return "\n".join([
        "set -eu",
        f"if [ -d {IMAGE_LIB} ] && [ -d {q(host_prefix)} ]; then",
        f"  mkdir -p {q(host_prefix)}/lib {q(host_prefix)}/bin",
        f"  cp -a {IMAGE_LIB} {q(host_prefix)}/lib/",
        f"  for c in {links}; do ln -sfn {IMAGE_LIB}/venv/bin/$c {q(host_prefix)}/bin/$c; done",
        "fi",
        f"if [ ! -e {q(syscage_config)} ]; then",
        f"  mkdir -p $(dirname {q(syscage_config)}) && cp {q(shipped_config)} {q(syscage_config)}",
        "fi",
        f"out=$(syscage install containerd --config {q(containerd_config)} --name {q(handler)} --via {q(via)} --write)",
        'echo "$out"',
        'case "$out" in *"nothing written"*) ;; *) ' + restart + " ;; esac",
        "syscage doctor || true",
    ]) + "\n"


def manifests(node: Node) -> list[dict[str, Any]]:
    labels = {"app.kubernetes.io/name": "syscage"}
    mounts = [{"name": _volume(p), "mountPath": p} for p in HOST_PATHS]
    mounts.append({"name": "usr-local", "mountPath": "/host/usr/local"})
    volumes = [{"name": _volume(p), "hostPath": {"path": p, "type": "DirectoryOrCreate"}} for p in HOST_PATHS]
    volumes.append({"name": "usr-local", "hostPath": {"path": "/usr/local", "type": "Directory"}})
    script = node_setup_script(node.handler, node.via)
    container = {
        "name": "syscage", "image": node.image,
        "command": ["/bin/sh", "-c", f"{script}exec syscage-tracer --idle-timeout 0\n"],
        "env": [{"name": "SYSCAGE_CONFIG", "value": "/etc/syscage/config.toml"}],
        "securityContext": {"privileged": True},
        "volumeMounts": mounts,
    }
    daemonset = {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "syscage", "namespace": node.namespace, "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"hostPID": True, "hostNetwork": True,  # the node's host name names its runs
                         "priorityClassName": "system-node-critical",
                         "tolerations": [{"operator": "Exists"}],
                         "containers": [container], "volumes": volumes},
            },
        },
    }
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": node.namespace}}
    runtime_class = {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": node.handler},
                     "handler": node.handler}
    return [namespace, daemonset, runtime_class]


def render(node: Node) -> str:
    import yaml

    head = ("# syscage on every node, rendered by `syscage install kubernetes`\n"
            f"#   --image {node.image} --namespace {node.namespace} --handler {node.handler}\n"
            "# A pod opts in with `runtimeClassName: " + node.handler + "` and the annotations io.syscage.mode and "
            "io.syscage.profile.\n")
    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True  # every labels block written out: no anchors in a manifest people read

    def text(dumper: yaml.SafeDumper, value: str) -> Any:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

    Dumper.add_representer(str, text)
    return head + yaml.dump_all(manifests(node), Dumper=Dumper, sort_keys=False, width=120)


def _volume(path: str) -> str:
    return path.strip("/").replace("/", "-").replace("_", "-") or "root"
