"""The build copies the files sfconnector reads at run time (sfconnector/shipped.py: SHIPPED) into the wheel as
package data, so an installed sfconnector finds its schema, example config, rules and units."""

from __future__ import annotations

import runpy
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# One list, read from the module that finds the files again at run time (it needs only the standard library).
SHIPPED: tuple[str, ...] = runpy.run_path(str(ROOT / "sfconnector" / "shipped.py"))["SHIPPED"]


class BuildWithShippedFiles(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "sfconnector" / "_shipped"
        for relative in SHIPPED:
            source, dest = ROOT / relative, target / relative
            dest.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, dest, dirs_exist_ok=True)
            else:
                shutil.copy2(source, dest)


setup(cmdclass={"build_py": BuildWithShippedFiles})
