"""A run's identity, written once: its id, who runs it, which environment, where it is recorded.

``invoke`` (turnout.commands) and the playbooks (the ``turnout_run`` action plugin, for
ansible-playbook, Jenkins and AWX) both call :func:`start`, so a run started either way is
named and recorded the same way. Pure: the caller passes the environment variables, the host
name and the time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from turnout.contracts import format_timestamp, new_run_id
from turnout.errors import InputError

ACTIONS = ("deploy", "rollback", "promote", "provision", "smoke", "reconcile")
MANIFEST_NAME = "manifest.yml"


def deployed_by(extravars: Mapping[str, Any], environ: Mapping[str, str], user: str,
                hostname: str) -> str:
    """Who runs this, first that applies: ``turnout_deployed_by``; the AWX user
    (``awx:<name>``); ``$TURNOUT_BY``; the Jenkins job (``jenkins:$BUILD_TAG``); user@host."""
    if extravars.get("turnout_deployed_by"):
        return str(extravars["turnout_deployed_by"])
    awx_user = extravars.get("awx_user_name") or extravars.get("tower_user_name")
    if awx_user:
        return f"awx:{awx_user}"
    if environ.get("TURNOUT_BY"):
        return environ["TURNOUT_BY"]
    if environ.get("BUILD_TAG"):
        return f"jenkins:{environ['BUILD_TAG']}"
    return f"{user or 'unknown'}@{hostname}"


def inventory_env(inventory_dir: str | os.PathLike[str], lb_vars: Mapping[str, Any]) -> str:
    """The environment an inventory describes: ``turnout_inventory_env``, else its directory."""
    return str(lb_vars.get("turnout_inventory_env") or Path(inventory_dir).name)


def manifest_path(inventory_dir: str | os.PathLike[str], configured: Any = None) -> Path:
    """Where the runs of an environment are recorded: ``turnout_manifest_path`` (relative to
    the inventory directory when not absolute), else ``<inventory dir>/manifest.yml``."""
    base = Path(inventory_dir)
    if configured:
        path = Path(str(configured)).expanduser()
        return path if path.is_absolute() else base / path
    return base / MANIFEST_NAME


def start(action: str, extravars: Mapping[str, Any], inventory_dir: str | os.PathLike[str],
          lb_vars: Mapping[str, Any], environ: Mapping[str, str], user: str, hostname: str,
          now: datetime) -> dict[str, Any]:
    """The run record every playbook carries as ``turnout_run`` (and invoke logs).

    InputError when ``turnout_env`` names another environment than the inventory's.
    """
    if action not in ACTIONS:
        raise InputError(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
    env = inventory_env(inventory_dir, lb_vars)
    asked = extravars.get("turnout_env")
    if asked not in (None, "") and str(asked) != env:
        raise InputError(f"turnout_env={str(asked)[:40]} but this inventory is environment {env}; "
                         "pick the inventory of that environment (or fix turnout_env)")
    version = extravars.get("turnout_version")
    configured = extravars.get("turnout_manifest_path") or lb_vars.get("turnout_manifest_path")
    return {
        "id": str(extravars.get("turnout_run_id") or new_run_id(now)),
        "by": deployed_by(extravars, environ, user, hostname),
        "env": env,
        "manifest_path": str(manifest_path(inventory_dir, configured)),
        "started_at": format_timestamp(now),
        "action": action,
        "version": None if version in (None, "") else str(version),
        "lock_held": False,
        "failed": False,
        "phase": None,
        "message": "",
    }
