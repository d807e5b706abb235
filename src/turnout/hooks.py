"""Deploy hooks: task files named in the inventory (``turnout_hooks``) that turnout includes
before and after the phases of a run. One system, one table: each hook's name says when it
runs, :data:`WHERE` says where (the controller, or each target host), :data:`COMMAND_HOOKS`
which commands run it. Pure: names and paths are checked here; the playbooks include the files.
docs/hooks.md is the reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from turnout.errors import InputError

CONTROLLER = "controller"
EACH_TARGET_HOST = "each target host"
# name -> where it runs, in the order a deploy reaches them
WHERE = {
    "before_stage": CONTROLLER,
    "before_activate": EACH_TARGET_HOST,  # staged, not yet switched to: current is the old one
    "after_activate": EACH_TARGET_HOST,  # current points at the release, the app restarted
    "after_stage": CONTROLLER,
    "before_smoke": CONTROLLER,
    "after_smoke": CONTROLLER,
    "before_flip": CONTROLLER,
    "after_flip": CONTROLLER,
    "before_record": CONTROLLER,
    "after_record": CONTROLLER,
}
HOOK_NAMES = tuple(WHERE)
HOST_HOOKS = tuple(name for name, where in WHERE.items() if where == EACH_TARGET_HOST)
# Which commands run which hooks (a promote only flips what a deploy staged and smoked; a
# rollback flips to a release that went live before, and its hooks get that target).
COMMAND_HOOKS = {
    "deploy": HOOK_NAMES,
    "promote": ("before_flip", "after_flip", "after_record"),
    "rollback": ("before_flip", "after_flip", "before_record", "after_record"),
}
# Hooks that run for a failed run too (they see turnout_hook_facts.result).
ALWAYS = ("before_record", "after_record")
# Hooks that belong to the flip: not run while a deploy waits for approval.
FLIP = ("before_flip", "after_flip")
# The phase a failing hook fails the run in (before the flip nothing has moved yet).
PHASE = {"before_stage": "stage", "before_activate": "stage", "after_activate": "stage",
         "after_stage": "stage", "before_smoke": "smoke", "after_smoke": "smoke",
         "before_flip": "flip", "after_flip": "verify", "before_record": "record",
         "after_record": "record"}
# A run refused before it started (bad input, a held lock) runs no hook at all.
REFUSED_PHASES = ("preflight", "lock")


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


def runs_now(name: str, action: str, failed: bool, phase: str | None = None,
             noop: bool = False, awaiting: bool = False) -> bool:
    """Whether hook ``name`` runs now in a run of ``action``.

    A refused run runs none; a failed one only the record hooks; a no-op deploy only the
    record hooks; a deploy that waits for approval not the flip hooks.
    """
    if name not in COMMAND_HOOKS.get(action, ()):
        return False
    if failed and phase in REFUSED_PHASES:
        return False
    if name in ALWAYS:
        return True
    return not failed and not noop and not (awaiting and name in FLIP)


def phase_of(name: str) -> str:
    """The phase a failure of hook ``name`` fails the run in."""
    if name not in PHASE:
        raise InputError(f"turnout_hooks: unknown hook {name!r}; use one of "
                         f"{', '.join(HOOK_NAMES)}")
    return PHASE[name]


def host_hooks(resolved: Mapping[str, str]) -> dict[str, str]:
    """The hooks of ``resolved`` that run on each target host (handed to app_release)."""
    return {name: path for name, path in resolved.items() if name in HOST_HOOKS}
