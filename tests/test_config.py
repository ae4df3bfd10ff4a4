from __future__ import annotations

import errno
from pathlib import Path

import pytest

from syscage.config import Config, config_from_mapping, load_config, parse_errno
from syscage.errors import SyscageError

SHIPPED = Path(__file__).resolve().parent.parent / "config" / "config.toml"


def test_shipped_config_equals_builtin_defaults() -> None:
    shipped = load_config(SHIPPED)
    assert shipped._replace(source=None) == Config()


def test_env_var_overrides_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[paths]\nstore = "/tmp/s"\n[seccomp]\nerrno = "EACCES"\n[tracer]\nidle_timeout = 5\n')
    monkeypatch.setenv("SYSCAGE_CONFIG", str(cfg))
    config = load_config()
    assert config.store == Path("/tmp/s")
    assert config.seccomp_errno == errno.EACCES
    assert config.idle_timeout == 5.0
    assert config.run_dir == Path("/run/syscage")  # untouched keys keep defaults


def test_missing_default_file_means_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SYSCAGE_CONFIG", raising=False)
    monkeypatch.setattr("syscage.config.DEFAULT_CONFIG_PATH", tmp_path / "absent.toml")
    assert load_config().store == Path("/var/lib/syscage")


def test_missing_named_file_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SYSCAGE_CONFIG", str(tmp_path / "absent.toml"))
    with pytest.raises(SyscageError, match="does not exist"):
        load_config()


@pytest.mark.parametrize(("text", "message"), [
    ("[paths\n", "not valid TOML"),
    ('[paths]\nstore = "relative/dir"\n', "absolute path"),
    ("[tracer]\nidle_timeout = -1\n", "positive number"),
    ("[tracer]\nbogus = 1\n", "unknown key tracer.bogus"),
    ('[seccomp]\nerrno = "ENOTANERRNO"\n', "unknown errno"),
    ('[enforce]\non_missing_profile = "maybe"\n', "use one of fail, allow"),
    ('[apparmor]\nmode = "on"\n', "use one of auto, required, off"),
    ("paths = 3\n", "must be a table"),
    ('[seccomp]\nalways_allow = "exit_group"\n', "list of syscall names"),
    ('[seccomp]\nalways_allow = ["exit_group", "../x"]\n', "list of syscall names"),
])
def test_bad_config_gives_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(SyscageError, match=message):
        load_config(cfg)


def test_parse_errno() -> None:
    assert parse_errno("eperm") == errno.EPERM
    assert parse_errno(38) == errno.ENOSYS
    for bad in (True, 99999, "nope", 1.5):
        with pytest.raises(ValueError):
            parse_errno(bad)


def test_parse_cache_follows_edits_and_keeps_the_checks(tmp_path: Path, private_config_cache: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[log]\nlevel = "debug"\n')
    assert load_config(path).log_level == "debug"
    assert len(list(private_config_cache.iterdir())) == 1  # parsed once, cached
    assert load_config(path).log_level == "debug"  # from the cache
    path.write_text('[log]\nlevel = "error"\n')
    assert load_config(path).log_level == "error"  # edited: parsed again
    path.write_text('[log]\nlevel = "loud"\n')
    with pytest.raises(SyscageError, match="log_level"):
        load_config(path)  # a cached parse is still checked
    path.write_text("[log\n")
    with pytest.raises(SyscageError, match="not valid TOML"):
        load_config(path)


def test_always_allow_floor(tmp_path: Path) -> None:
    assert Config().always_allow == ("exit", "exit_group", "restart_syscall", "rt_sigreturn")
    cfg = tmp_path / "c.toml"
    cfg.write_text('[seccomp]\nalways_allow = ["exit_group", "exit", "exit"]\n')
    assert load_config(cfg).always_allow == ("exit", "exit_group")
    cfg.write_text("[seccomp]\nalways_allow = []\n")
    assert load_config(cfg).always_allow == ()


def test_never_allow_cannot_name_the_kernels_asynchronous_syscalls() -> None:
    with pytest.raises(SyscageError, match="restart_syscall, which the kernel itself makes"):
        config_from_mapping({"seccomp": {"never_allow": ["restart_syscall"], "always_allow": []}})


def test_never_allow_is_a_syscall_list_and_cannot_overlap_always_allow() -> None:
    from syscage.config import config_from_mapping
    from syscage.errors import SyscageError

    assert config_from_mapping({"seccomp": {"never_allow": ["bpf", "keyctl"]}}).never_allow == ("bpf", "keyctl")
    assert config_from_mapping({}).never_allow == ()
    with pytest.raises(SyscageError, match="both name exit_group"):
        config_from_mapping({"seccomp": {"never_allow": ["exit_group"]}})
    with pytest.raises(SyscageError, match="never_allow"):
        config_from_mapping({"seccomp": {"never_allow": "bpf"}})


def test_convergence_and_coverage_keys() -> None:
    cfg = config_from_mapping({"convergence": {"min_runs": 3, "min_minutes": 0, "chance_share": 0.25,
                                               "on_enforce": "refuse"}, "seccomp": {"coverage": "learned+related"}})
    assert (cfg.convergence_min_runs, cfg.convergence_min_minutes, cfg.chance_share) == (3, 0.0, 0.25)
    assert cfg.convergence_on_enforce == "refuse" and cfg.coverage == "learned+related"
    assert Config().coverage == "learned" and Config().convergence_on_enforce == "warn"
    for bad, match in (({"convergence": {"chance_share": 0}}, "share of runs"),
                       ({"convergence": {"min_minutes": -1}}, "minutes"),
                       ({"convergence": {"on_enforce": "maybe"}}, "warn, refuse"),
                       ({"seccomp": {"coverage": "everything"}}, "learned, learned\\+related, learned\\+static")):
        with pytest.raises(SyscageError, match=match):
            config_from_mapping(bad)
