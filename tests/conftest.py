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
