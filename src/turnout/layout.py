"""Where turnout's content and the user's workspace are: one decision for cli, runner, commands.

In a checkout both are the repository root (playbooks/, roles/, plugins/, ansible.cfg,
inventories/, dist/). Installed from a wheel the content is the packaged ``turnout/_content``
and the workspace is the current directory (inventories/ and dist/ under it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
CONTENT_MARKERS = ("playbooks", "roles", "ansible.cfg")


def _is_content(path: Path) -> bool:
    return all((path / marker).exists() for marker in CONTENT_MARKERS)


@dataclass(frozen=True)
class Layout:
    content: Path    # playbooks/, roles/, plugins/, ansible.cfg
    workspace: Path  # inventories/ (unless $TURNOUT_INVENTORIES), dist/, hooks
    installed: bool  # True: running from a wheel, not the checkout

    @property
    def command(self) -> str:
        """The command a user types: 'turnout' installed, 'invoke' in the checkout."""
        return "turnout" if self.installed else "invoke"


def resolve(package: Path = PACKAGE, cwd: Path | None = None) -> Layout:
    """The checkout when the package sits in <root>/src/turnout next to the content, else
    the packaged content with the current directory as the workspace."""
    checkout = package.parents[1]
    if package.parent.name == "src" and _is_content(checkout):
        return Layout(content=checkout, workspace=checkout, installed=False)
    return Layout(content=package / "_content",
                  workspace=(cwd or Path(os.getcwd())).resolve(), installed=True)


def current() -> Layout:
    return resolve()
