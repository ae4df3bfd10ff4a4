"""`syscage install`: containerd config edits (v2 in place, v3 drop-in) and the hooks.d file."""

from __future__ import annotations

import argparse
import json
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
import tomli

from syscage.config import Config
from syscage.errors import SyscageError
from syscage.install import (
    BACKUP_SUFFIX,
    SHIPPED_HOOK_PATH,
    add_install_parser,
    add_runtime_v2,
    containerd_snippet,
    describe_containerd,
    hooks_json,
    install_containerd,
    install_hooks_dir,
    read_containerd_config,
    runtime_entry,
    runtime_table_path,
)

FIXTURES = Path(__file__).parent / "fixtures"
SHIPPED = Path(__file__).parents[1] / "config"
V2_RUNTIMES = ("plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes")
V3_RUNTIMES = ("plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes")
ALLOW = ["io.syscage.*"]


def flatten(doc: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Leaf key paths -> values; an empty table is a leaf too, so it must survive as well."""
    out: dict[tuple[str, ...], Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, (*prefix, key)))
        else:
            out[(*prefix, key)] = value
    return out


def get(doc: dict[str, Any], path: tuple[str, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def copy_fixture(tmp_path: Path, version: int) -> Path:
    target = tmp_path / "containerd" / "config.toml"
    target.parent.mkdir()
    shutil.copyfile(FIXTURES / f"containerd-v{version}.toml", target)
    return target


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `directory` with its bytes and inode (a rewrite with equal bytes changes the inode)."""
    return {str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_ino)
            for p in sorted(directory.rglob("*")) if p.is_file()}


def run_cli(argv: list[str], config: Config | None = None) -> int:
    parser = argparse.ArgumentParser(prog="syscage")
    add_install_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.func(config or Config(), args))


# --- fixtures are what they claim to be ---------------------------------------------------------------


@pytest.mark.parametrize("version", [2, 3])
def test_fixtures_are_realistic(version: int) -> None:
    doc = tomli.loads((FIXTURES / f"containerd-v{version}.toml").read_text())
    assert doc["version"] == version
    runtimes = get(doc, V2_RUNTIMES if version == 2 else V3_RUNTIMES)
    assert runtimes["runc"]["options"]["SystemdCgroup"] is True
    assert read_containerd_config(FIXTURES / f"containerd-v{version}.toml").version == version


# --- version 2: edited in place -----------------------------------------------------------------------


def test_v2_write_adds_runtime_in_place(tmp_path: Path) -> None:
    config = copy_fixture(tmp_path, 2)
    original = config.read_bytes()
    report = install_containerd(config)
    assert report.written == [config]
    new = tomli.loads(config.read_text())
    old = tomli.loads(original.decode())
    new_flat, old_flat = flatten(new), flatten(old)
    for key, value in old_flat.items():
        assert new_flat[key] == value, key
    added = {k for k in new_flat if k not in old_flat}
    assert added and all(k[:5] == (*V2_RUNTIMES, "syscage") for k in added)
    entry = get(new, (*V2_RUNTIMES, "syscage"))
    assert entry == {"runtime_type": "io.containerd.syscage.v2", "pod_annotations": ALLOW,
                     "container_annotations": ALLOW}
    # Nothing under conf.d for version 2: an import would replace the whole CRI section.
    assert not (config.parent / "conf.d").exists()
    backup = config.with_name(config.name + BACKUP_SUFFIX)
    assert report.backup == backup and backup.read_bytes() == original


def test_v2_write_only_adds_lines(tmp_path: Path) -> None:
    """Comments, order and formatting survive: the original lines are all there, in order."""
    config = copy_fixture(tmp_path, 2)
    original = config.read_text().splitlines()
    install_containerd(config)
    new = config.read_text().splitlines()
    remaining = iter(new)
    assert all(any(line == other for other in remaining) for line in original)
    assert len(new) > len(original)
    assert "            # kubelet runs with cgroupDriver: systemd" in new
    assert "      # pull-through cache in front of Docker Hub (rate limits)" in new
    # The runtime sits with the other runtimes, indented like them.
    header = '        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.syscage]'
    assert new.index(header) > new.index('            SystemdCgroup = true')
    assert new.index(header) < new.index(
        '      [plugins."io.containerd.grpc.v1.cri".containerd.untrusted_workload_runtime]')


def test_v2_second_run_changes_nothing(tmp_path: Path) -> None:
    config = copy_fixture(tmp_path, 2)
    install_containerd(config)
    before = snapshot(tmp_path)
    report = install_containerd(config)
    assert not report.changed and report.backup is None
    assert snapshot(tmp_path) == before


def test_v2_keeps_mode(tmp_path: Path) -> None:
    config = copy_fixture(tmp_path, 2)
    config.chmod(0o600)
    install_containerd(config)
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.with_name(config.name + BACKUP_SUFFIX).stat().st_mode) == 0o600


def test_symlinked_config_stays_a_link(tmp_path: Path) -> None:
    real = copy_fixture(tmp_path, 2)
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    install_containerd(link)
    assert link.is_symlink() and "syscage" in get(tomli.loads(real.read_text()), V2_RUNTIMES)


def test_v2_binary_name_copies_systemd_cgroup(tmp_path: Path) -> None:
    config = copy_fixture(tmp_path, 2)
    install_containerd(config, via="binary-name", runtime_binary="/opt/syscage/bin/syscage-runtime")
    entry = get(tomli.loads(config.read_text()), (*V2_RUNTIMES, "syscage"))
    assert entry["runtime_type"] == "io.containerd.runc.v2"
    assert entry["pod_annotations"] == ALLOW and entry["container_annotations"] == ALLOW
    assert entry["options"] == {"BinaryName": "/opt/syscage/bin/syscage-runtime", "SystemdCgroup": True}


def test_v2_switching_via_updates_entry_and_keeps_first_backup(tmp_path: Path) -> None:
    config = copy_fixture(tmp_path, 2)
    original = config.read_bytes()
    install_containerd(config)
    report = install_containerd(config, via="binary-name")
    assert report.written == [config] and report.backup is None
    assert get(tomli.loads(config.read_text()), (*V2_RUNTIMES, "syscage", "options", "BinaryName"))
    install_containerd(config, via="shim")
    entry = get(tomli.loads(config.read_text()), (*V2_RUNTIMES, "syscage"))
    assert entry["runtime_type"] == "io.containerd.syscage.v2"
    assert "BinaryName" not in entry.get("options", {})
    before = snapshot(tmp_path)
    assert not install_containerd(config, via="shim").changed
    assert snapshot(tmp_path) == before
    assert config.with_name(config.name + BACKUP_SUFFIX).read_bytes() == original


def test_v2_keeps_operator_keys_of_existing_entry(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('version = 2\n\n# ours\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.syscage]\n'
                      'runtime_type = "io.containerd.runc.v2"\nprivileged_without_host_devices = true  # keep\n')
    install_containerd(config)
    text = config.read_text()
    entry = get(tomli.loads(text), (*V2_RUNTIMES, "syscage"))
    assert entry["privileged_without_host_devices"] is True
    assert entry["runtime_type"] == "io.containerd.syscage.v2" and entry["pod_annotations"] == ALLOW
    assert "# ours" in text and "# keep" in text


@pytest.mark.parametrize("text, as_text", [
    ("version = 2\n", True),
    ('version = 2\n[grpc]\naddress = "/run/containerd/containerd.sock"\n', True),
    ('version = 2\n\n[plugins."io.containerd.grpc.v1.cri"]\nsandbox_image = "pause:3.9"\n\n'
     '[plugins."io.containerd.grpc.v1.cri".registry]\nconfig_path = "/etc/containerd/certs.d"\n\n'
     '[metrics]\naddress = ""', True),
    # Inline tables cannot be extended by a [header]: tomlkit edits the inline table instead.
    ('version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd]\n'
     'runtimes = { runc = { runtime_type = "io.containerd.runc.v2" } }\n', False),
])
def test_v2_other_layouts(text: str, as_text: bool) -> None:
    for entry in (runtime_entry("shim"), runtime_entry("binary-name")):
        new = add_runtime_v2(text, "syscage", entry)
        assert new is not None
        assert ("# added by `syscage install containerd`" in new) == as_text
        doc, old = tomli.loads(new), tomli.loads(text)
        assert get(doc, (*V2_RUNTIMES, "syscage")) == entry
        assert all(flatten(doc)[k] == v for k, v in flatten(old).items())
        assert add_runtime_v2(new, "syscage", entry) is None


def test_v2_import_that_defines_cri_is_refused(tmp_path: Path) -> None:
    config = copy_fixture(tmp_path, 2)
    dropin = config.parent / "cri.toml"
    dropin.write_text('version = 2\n[plugins."io.containerd.grpc.v1.cri"]\nsandbox_image = "pause:3.9"\n')
    config.write_text(config.read_text().replace("imports = []", 'imports = ["cri.toml"]'))
    before = snapshot(tmp_path)
    with pytest.raises(SyscageError, match=r"cri\.toml"):
        install_containerd(config)
    assert snapshot(tmp_path) == before


# --- version 3: drop-in + imports ---------------------------------------------------------------------


def test_v3_write_adds_dropin_and_import(tmp_path: Path) -> None:
    config = copy_fixture(tmp_path, 3)
    original = config.read_bytes()
    report = install_containerd(config)
    dropin = config.parent / "conf.d" / "syscage.toml"
    assert dropin.is_absolute() and report.written == [dropin, config]
    new = tomli.loads(config.read_text())
    old = tomli.loads(original.decode())
    assert new["imports"] == ["/etc/containerd/site.toml", str(dropin)]
    assert {k: v for k, v in flatten(new).items() if k != ("imports",)} == \
        {k: v for k, v in flatten(old).items() if k != ("imports",)}
    dropped = tomli.loads(dropin.read_text())
    assert dropped == {"version": 3, "plugins": {"io.containerd.cri.v1.runtime": {"containerd": {"runtimes": {
        "syscage": {"runtime_type": "io.containerd.syscage.v2", "pod_annotations": ALLOW,
                    "container_annotations": ALLOW}}}}}}
    assert dropin.read_text() == containerd_snippet(3)
    assert config.with_name(config.name + BACKUP_SUFFIX).read_bytes() == original
    assert "# site-wide settings shipped by the node image" in config.read_text()


def test_v3_second_run_changes_nothing(tmp_path: Path) -> None:
    config = copy_fixture(tmp_path, 3)
    install_containerd(config)
    before = snapshot(tmp_path)
    assert not install_containerd(config).changed
    assert snapshot(tmp_path) == before


def test_v3_without_imports_gets_one_below_version(tmp_path: Path) -> None:
    config = copy_fixture(tmp_path, 3)
    text = config.read_text()
    config.write_text(text.replace("# site-wide settings shipped by the node image\n", "")
                      .replace("imports = ['/etc/containerd/site.toml']\n", ""))
    install_containerd(config)
    lines = config.read_text().splitlines()
    assert lines[lines.index("version = 3") + 1] == f'imports = ["{config.parent}/conf.d/syscage.toml"]'
    assert tomli.loads(config.read_text())["imports"] == [str(config.parent / "conf.d" / "syscage.toml")]


def test_v3_glob_import_already_covers_dropin(tmp_path: Path) -> None:
    config = copy_fixture(tmp_path, 3)
    config.write_text(config.read_text().replace("['/etc/containerd/site.toml']", "['conf.d/*.toml']"))
    before = config.read_bytes()
    report = install_containerd(config)
    assert report.written == [config.parent / "conf.d" / "syscage.toml"] and report.backup is None
    assert config.read_bytes() == before


def test_v3_binary_name(tmp_path: Path) -> None:
    config = copy_fixture(tmp_path, 3)
    install_containerd(config, via="binary-name", name="syscage-learn")
    doc = tomli.loads((config.parent / "conf.d" / "syscage.toml").read_text())
    entry = get(doc, (*V3_RUNTIMES, "syscage-learn"))
    assert entry["runtime_type"] == "io.containerd.runc.v2"
    assert entry["options"] == {"BinaryName": "/usr/local/bin/syscage-runtime", "SystemdCgroup": True}


# --- refusals -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, match", [
    ("version = 2\n[plugins\n", "not valid TOML"),
    ('[plugins.cri]\nsandbox_image = "pause"\n', "migrate"),
    ("version = 1\n", "migrate"),
    ("version = 4\n", "unknown version"),
    ('version = "2"\n', "unknown version"),
])
@pytest.mark.parametrize("write", [False, True])
def test_bad_configs_are_refused(tmp_path: Path, text: str, match: str, write: bool) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text)
    with pytest.raises(SyscageError, match=match) as info:
        install_containerd(config) if write else describe_containerd(config)
    assert str(config) in str(info.value)
    assert config.read_text() == text and not list(tmp_path.glob("*.bak"))


def test_missing_config(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(SyscageError, match="does not exist"):
        install_containerd(missing)
    assert not missing.exists()
    out = describe_containerd(missing)
    assert "assuming config version 2" in out and containerd_snippet(2) in out


@pytest.mark.parametrize("kwargs", [{"name": "Sys_Cage"}, {"name": ""}, {"runtime_binary": "syscage-runtime"}])
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, str]) -> None:
    config = copy_fixture(tmp_path, 2)
    with pytest.raises(SyscageError):
        install_containerd(config, **kwargs)


# --- printed snippet ----------------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["shim", "binary-name"])
@pytest.mark.parametrize("version", [2, 3])
def test_printed_snippet_parses(tmp_path: Path, capsys: pytest.CaptureFixture[str], version: int, via: str) -> None:
    config = copy_fixture(tmp_path, version)
    before = snapshot(tmp_path)
    assert run_cli(["install", "containerd", "--config", str(config), "--via", via, "--name", "cage"]) == 0
    out = capsys.readouterr().out
    assert snapshot(tmp_path) == before
    snippet = containerd_snippet(version, "cage", via, systemd_cgroup=via == "binary-name")
    assert snippet in out
    # The v3 snippet is a whole drop-in; the v2 one is tables for the main file.
    doc = tomli.loads(snippet if version == 3 else "version = 2\n" + snippet)
    assert doc["version"] == version
    entry = get(doc, runtime_table_path(version, "cage"))
    assert entry["pod_annotations"] == ALLOW and entry["container_annotations"] == ALLOW
    if via == "shim":
        assert entry == {"runtime_type": "io.containerd.syscage.v2", "pod_annotations": ALLOW,
                         "container_annotations": ALLOW}
    else:
        assert entry["options"]["BinaryName"] == "/usr/local/bin/syscage-runtime"
    assert "kind: RuntimeClass" in out and "handler: cage" in out
    assert ("#5837" in out) == (version == 2)
    # The fixtures' runc uses SystemdCgroup = true, which only binary-name can pass on.
    assert ("if containers of this handler fail with cgroup errors" in " ".join(out.split())) == (via == "shim")


def test_shipped_containerd_snippets_match_generator() -> None:
    assert (SHIPPED / "containerd" / "syscage-v2.toml").read_text() == containerd_snippet(2)
    assert (SHIPPED / "containerd" / "syscage-v3.toml").read_text() == containerd_snippet(3)


# --- through argparse ---------------------------------------------------------------------------------


def test_cli_write_then_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = copy_fixture(tmp_path, 2)
    assert run_cli(["install", "containerd", "--config", str(config), "--write"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {config}" in out and f"{config}{BACKUP_SUFFIX}" in out
    assert "restart containerd" in out and "#5837" in out
    assert run_cli(["install", "containerd", "--config", str(config), "--write"]) == 0
    assert "nothing written" in capsys.readouterr().out


def test_cli_install_without_target_shows_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["install"]) == 2
    assert "containerd" in capsys.readouterr().out


def test_cli_rejects_unknown_via() -> None:
    with pytest.raises(SystemExit):
        run_cli(["install", "containerd", "--via", "nope"])


# --- hooks.d ------------------------------------------------------------------------------------------


def test_hooks_json_shape() -> None:
    doc = json.loads(hooks_json(Path("/x/syscage-hook")))
    assert doc["version"] == "1.0.0"
    assert doc["hook"]["path"] == "/x/syscage-hook" and doc["hook"]["args"] == ["syscage-hook", "auto"]
    assert doc["stages"] == ["prestart", "poststop"]
    assert doc["when"] == {"annotations": {r"^io\.syscage\.mode$": "^(learn|complain)$"}}


def test_shipped_hooks_file_matches_generator() -> None:
    assert (SHIPPED / "hooks.d" / "syscage.json").read_text() == hooks_json(SHIPPED_HOOK_PATH, Config().hook_timeout)


def test_hooks_dir_writes_and_is_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hooks = tmp_path / "etc" / "containers" / "oci" / "hooks.d"
    config = Config(hook_path=Path("/opt/syscage/bin/syscage-hook"))
    assert run_cli(["install", "hooks-dir", str(hooks)], config) == 0
    written = hooks / "syscage.json"
    assert f"wrote {written}" in capsys.readouterr().out
    doc = json.loads(written.read_text())
    shipped = json.loads((SHIPPED / "hooks.d" / "syscage.json").read_text())
    assert doc["hook"].pop("path") == "/opt/syscage/bin/syscage-hook"
    shipped["hook"].pop("path")
    assert doc == shipped
    before = snapshot(tmp_path)
    assert run_cli(["install", "hooks-dir", str(hooks)], config) == 0
    assert "nothing written" in capsys.readouterr().out
    assert snapshot(tmp_path) == before
    assert install_hooks_dir(hooks, config.hook_path) is None


def test_hooks_dir_names_a_config_other_than_the_default(tmp_path: Path) -> None:
    """podman gives a hook no environment but the hook's own: a private config must be named in the file."""
    own = tmp_path / "config.toml"
    assert run_cli(["install", "hooks-dir", str(tmp_path / "h")], Config(source=own)) == 0
    assert json.loads((tmp_path / "h" / "syscage.json").read_text())["hook"]["env"] == [f"SYSCAGE_CONFIG={own}"]
    assert "env" not in json.loads(hooks_json(SHIPPED_HOOK_PATH))["hook"]
