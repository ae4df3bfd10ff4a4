"""Every benchmark module imports: `make bench` is not part of `make test`, so a moved helper would otherwise
be found only when someone measures."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).parent.parent / "bench"


@pytest.mark.parametrize("module", sorted(p.stem for p in BENCH.glob("*.py") if p.stem != "__init__"))
def test_bench_module_imports(module: str) -> None:
    importlib.import_module(f"bench.{module}")
