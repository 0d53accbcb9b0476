"""Build hook: ship the top-level registry.toml inside the installed `zoo` package.

Everything else about the build lives in pyproject.toml. An editable install
reads registry.toml from the checkout instead (see zoo/recipes.py).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithRegistry(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "zoo" / "registry.toml"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(__file__).parent / "registry.toml", target)


setup(cmdclass={"build_py": BuildPyWithRegistry})
