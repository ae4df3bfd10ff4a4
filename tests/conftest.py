"""Unit tests keep the config parse cache in their own temporary directory, not the host's /run."""

from __future__ import annotations

from pathlib import Path

import pytest

from syscage import configcache


@pytest.fixture(autouse=True)
def private_config_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path_factory.mktemp("config-cache")
    monkeypatch.setattr(configcache, "CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def private_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """SYSCAGE_CONFIG names a config whose store, run directory and log are in the test's own directory."""
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[paths]\nstore = "{tmp_path}/store"\nrun_dir = "{tmp_path}/run"\n'
                   f'log_file = "{tmp_path}/log"\n')
    monkeypatch.setenv("SYSCAGE_CONFIG", str(cfg))
    return tmp_path
