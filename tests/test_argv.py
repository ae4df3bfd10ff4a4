"""syscage-runtime reads create/run command lines the way runc 1.1 (urfave/cli 1.22 over Go's flag
package) and crun 1.8 (argp) do; every case here was checked against the real binaries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from syscage.shim.argv import CreateCall, Unparsable, dialect, parse_create, parse_global


def create(argv: list[str], flavour: str = "runc", cwd: str = "/cwd") -> CreateCall | None:
    sub, index, _ = parse_global(argv, flavour)
    assert sub in ("create", "run")
    return parse_create(argv, index, flavour, cwd)


@pytest.mark.parametrize(("argv", "expected"), [
    (["create", "ID", "--bundle", "/b"], ("ID", "/b")),  # urfave moves options before the operands
    (["create", "-b", "/b1", "ID", "-b", "/b2"], ("ID", "/b2")),  # the last one wins
    (["create", "--bundle=/b1", "ID", "--bundle="], ("ID", "/cwd")),  # empty: runc stays where it is
    (["run", "ID", "--detach", "-b=rel"], ("ID", "/cwd/rel")),
    (["create", "-bundle", "/b", "--", "ID"], ("ID", "/b")),
    (["create", "--no-pivot", "--", "ID"], ("ID", "/cwd")),  # `--` as a boolean's "value" still ends options
    (["create", "ID", "--pid-file", "--bundle", "/b"], None),  # --pid-file takes "--bundle": two operands
    (["create", "--bundle", "/b", "-b", "/c", "ID"], None),  # "Cannot use two forms of the same flag"
    (["create", "--no-pivot", "ID", "--bundle", "/b"], None),  # the boolean takes ID along: 3 operands
    (["create", "ID", "-b"], None),  # -b takes ID: no operand
    (["create", "ID", "--", "-b", "/b"], None),
    (["create", "--help", "ID"], None),
    (["create", ""], None),
])
def test_runc_create(argv: list[str], expected: tuple[str, str] | None) -> None:
    call = create(argv)
    assert (call[:2] if call else None) == expected
    if call:
        assert call.config == os.path.join(call.bundle, "config.json")


def test_runc_global_options_last_one_wins() -> None:
    argv = ["--root", "/a", "-root=/b", "--log", "/l", "create", "--root", "/c", "ID"]
    assert parse_global(argv).options.get("root") == "/b"
    assert parse_global(["--", "create", "ID"]).subcommand == "create"
    assert parse_global(["--version", "create", "ID"]).subcommand is None
    assert parse_global(["-h=false", "create", "ID"]).subcommand == "create"


@pytest.mark.parametrize(("argv", "expected"), [
    (["create", "--bund=/b", "ID"], ("ID", "/b", "/b/config.json")),  # a unique prefix is the option
    (["create", "-b/b1", "-b", "/b2", "ID"], ("ID", "/b2", "/b2/config.json")),
    (["run", "-db", "/b", "ID"], ("ID", "/b", "/b/config.json")),
    (["create", "-b", "/b", "--config", "other.json", "ID"], ("ID", "/b", "/cwd/other.json")),
    (["create", "-b", "/b", "-fconfig.json", "ID"], ("ID", "/b", "/b/config.json")),
    (["create", "ID", "--bundle", "/b"], None),  # options end at the first operand
    (["create", "--no", "x", "ID"], None),  # ambiguous
    (["create", "--bundle=", "ID"], None),
])
def test_crun_create(argv: list[str], expected: tuple[str, str, str] | None) -> None:
    assert create(argv, "crun") == (CreateCall(*expected) if expected else None)


def test_crun_global_options_may_be_abbreviated() -> None:
    invocation = parse_global(["--cgroup-m", "systemd", "--root=/r", "create", "ID"], "crun")
    assert invocation.subcommand == "create" and invocation.options["root"] == "/r"
    assert parse_global(["--roo=/r", "create", "ID"], "crun").subcommand is None  # root or rootless?
    assert parse_global(["-V", "create", "ID"], "crun").subcommand is None
    assert dialect("/usr/bin/crun") == "crun" and dialect("/usr/sbin/runc") == "runc"


@pytest.mark.parametrize(("argv", "flavour"), [
    (["create", "--new-option", "x", "ID"], "runc"),
    (["create", "ID", "--new-option"], "runc"),
    (["create", "--new-option=x", "ID"], "crun"),
])
def test_an_option_syscage_does_not_know_is_not_guessed(argv: list[str], flavour: str) -> None:
    with pytest.raises(Unparsable, match="unknown option"):
        create(argv, flavour)


def test_the_bundle_is_where_chdir_lands(tmp_path: Path) -> None:
    """`link/..` is the parent of the link's target for the kernel, not the working directory."""
    (tmp_path / "real" / "inner").mkdir(parents=True)
    (tmp_path / "cwd").mkdir()
    (tmp_path / "cwd" / "link").symlink_to(tmp_path / "real" / "inner")
    call = create(["create", "-b", "link/..", "ID"], cwd=str(tmp_path / "cwd"))
    assert call is not None and call.bundle == str(tmp_path / "real")
