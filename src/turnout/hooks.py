"""Deploy hooks: task files named in the inventory (``turnout_hooks``) that run before and
after each phase. Pure: names and paths are checked here; the playbooks include the files.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from turnout.errors import InputError

PHASES = ("stage", "smoke", "flip", "record")
HOOK_NAMES = tuple(f"{when}_{phase}" for phase in PHASES for when in ("before", "after"))


def resolve(path: str, inventory_dir: str | Path, project_dir: str | Path) -> Path:
    """An absolute hook path: as given, else beside the inventory, else in the project."""
    if not isinstance(path, str) or not path.strip():
        raise InputError(f"turnout_hooks: a hook path must be a non-empty string (got {path!r})")
    candidate = Path(path)
    if candidate.is_absolute():
        found = candidate
    else:
        found = next((Path(base) / candidate for base in (inventory_dir, project_dir)
                      if (Path(base) / candidate).is_file()), Path(project_dir) / candidate)
    if not found.is_file():
        raise InputError(f"turnout_hooks: hook file {path} not found (looked beside the "
                         "inventory and in the project); fix the path in turnout_hooks")
    return found


def validate(hooks: Any, inventory_dir: str | Path, project_dir: str | Path) -> dict[str, str]:
    """Check ``turnout_hooks`` {hook name: task file}; return name -> absolute path."""
    if hooks in (None, ""):
        return {}
    if not isinstance(hooks, Mapping):
        raise InputError("turnout_hooks must be a mapping of hook name to task file, e.g. "
                         "{before_flip: hooks/migrate.yml}")
    resolved = {}
    for name, path in hooks.items():
        if name not in HOOK_NAMES:
            raise InputError(f"turnout_hooks: unknown hook {name!r}; use one of "
                             f"{', '.join(HOOK_NAMES)}")
        resolved[name] = str(resolve(path, inventory_dir, project_dir))
    return resolved
