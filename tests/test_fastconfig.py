"""The wrappers' fast config reader: values, its stat-validated cache, and what it refuses to trust."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from syscage import configcache
from syscage.shim import fastconfig

RUNTIME, RUN_DIR = ("runtime", "path"), ("paths", "run_dir")


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(configcache, "CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "config.toml"
    path.write_text('[runtime]\npath = "/opt/runc"\n[paths]\nrun_dir = "/run/x"\n')
    monkeypatch.setenv("SYSCAGE_CONFIG", str(path))
    return path


def parse_fails(path: str, raw: bytes) -> dict:
    """Stands in for fastconfig._parse (same signature): a call means the cache was not used."""
    raise AssertionError("parsed although the cache is valid")


def test_the_defaults_are_the_full_loaders() -> None:
    from syscage.config import Config

    default = Config()
    assert {RUNTIME: str(default.runtime_path), RUN_DIR: str(default.run_dir)} == fastconfig.DEFAULTS


def test_values_are_parsed_then_served_from_the_cache(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert fastconfig.read_keys() == {RUNTIME: "/opt/runc", RUN_DIR: "/run/x"}
    cached = list(Path(configcache.CACHE_DIR).iterdir())
    assert len(cached) == 1 and oct(cached[0].stat().st_mode & 0o777) == "0o600"
    monkeypatch.setattr(fastconfig, "_parse", parse_fails)
    assert fastconfig.read_keys() == {RUNTIME: "/opt/runc", RUN_DIR: "/run/x"}


def test_an_edited_config_is_parsed_again(config: Path) -> None:
    assert fastconfig.read_keys()[RUNTIME] == "/opt/runc"
    config.write_text('[runtime]\npath = "/usr/bin/crun"\n')
    assert fastconfig.read_keys() == {RUNTIME: "/usr/bin/crun", RUN_DIR: "/run/syscage"}


def test_a_cache_others_can_write_is_not_trusted(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fastconfig.read_keys()
    (cached,) = Path(configcache.CACHE_DIR).iterdir()
    text = config.read_bytes()
    cached.write_bytes(b"%d\n%s/tmp/evil\n/run/x\n" % (len(text), text))
    assert fastconfig.read_keys()[RUNTIME] == "/tmp/evil"  # (a cache of ours is believed: the check is real)
    os.chmod(cached, 0o666)
    assert fastconfig.read_keys()[RUNTIME] == "/opt/runc"


def test_a_same_size_edit_in_the_same_instant_is_seen(config: Path) -> None:
    """Timestamps are coarse: the cache is keyed by the config's text, not its mtime."""
    assert fastconfig.read_keys()[RUNTIME] == "/opt/runc"
    stat = config.stat()
    config.write_text(config.read_text().replace("/opt/runc", "/opt/crun"))
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert fastconfig.read_keys()[RUNTIME] == "/opt/crun"


def test_broken_or_missing_config_falls_back_to_defaults(config: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    config.write_text("[runtime]\npath = ")
    assert fastconfig.read_keys() == fastconfig.DEFAULTS
    assert "cannot parse" in capsys.readouterr().err
    assert fastconfig.read_keys() == fastconfig.DEFAULTS
    assert "cannot parse" in capsys.readouterr().err  # not cached: the warning repeats until it is fixed
    config.write_text('[runtime]\npath = "relative/runc"\n')
    assert fastconfig.read_keys()[RUNTIME] == "/usr/sbin/runc"  # not an absolute path: the default
    monkeypatch.setenv("SYSCAGE_CONFIG", str(config.parent / "missing.toml"))
    assert fastconfig.read_keys() == fastconfig.DEFAULTS


def test_unwritable_cache_dir_still_reads(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = config.parent / "file"
    blocker.write_text("")
    monkeypatch.setattr(configcache, "CACHE_DIR", str(blocker / "cache"))  # a path under a file: no cache
    assert fastconfig.read_keys()[RUNTIME] == "/opt/runc"
    assert fastconfig.read_keys()[RUNTIME] == "/opt/runc"


@pytest.mark.parametrize("text", [
    '[ runtime ]\npath = "/usr/bin/crun"\n',
    'runtime.path = "/usr/bin/crun"\n',
    '"runtime".path = "/usr/bin/crun"\n',
    "[ 'runtime' ]\n'path' = '/usr/bin/crun'  # a literal string\n",
    'runtime = { path = "/usr/bin/crun" }\n',
    '[\truntime\t]\n"p\\u0061th" = """/usr/bin/crun"""\n',
])
def test_every_spelling_of_the_runtime_key_is_read(config: Path, text: str) -> None:
    """Valid TOML that a look at the raw text misses: the real parser reads it (it was runc, silently)."""
    config.write_text(text)
    assert fastconfig.read_keys()[RUNTIME] == "/usr/bin/crun"
