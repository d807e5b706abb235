"""Ship the Ansible content (playbooks, roles, plugins, ansible.cfg) in the wheel as
turnout/_content, so the `turnout` command works without the checkout (turnout.layout)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
CONTENT = ("playbooks", "roles", "plugins", "ansible.cfg")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "molecule", ".molecule")


class BuildWithContent(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "turnout" / "_content"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for name in CONTENT:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, target / name, ignore=IGNORE)
            else:
                shutil.copy2(source, target / name)


setup(cmdclass={"build_py": BuildWithContent})
