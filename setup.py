"""Metadata is in pyproject.toml. This adds one build step: the C launchers installed as `syscage-runtime` and
`containerd-shim-syscage-v2` (shim/launcher_build.py), beside the Python entries they hand over to."""

import importlib.util
from pathlib import Path

from setuptools import Distribution, setup

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("launcher_build", HERE / "shim" / "launcher_build.py")
assert _spec is not None and _spec.loader is not None
launcher_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(launcher_build)

_base = Distribution().get_command_class("build_scripts")


class BuildScripts(_base):  # type: ignore[misc, valid-type]
    """The script files (the Python entries), then the launchers compiled into the same directory."""

    def run(self) -> None:
        super().run()
        for name in launcher_build.LAUNCHERS:
            launcher_build.build(name, Path(self.build_dir) / name)


setup(cmdclass={"build_scripts": BuildScripts})
