"""One release on one app host: the decisions of staging and activating it. Pure, stdlib only.

The ``turnout_release`` module (plugins/modules) does the I/O on the host and ships this file
as module_utils/turnout_release: which tar members to take and how many path components to
strip (any layout, one top-level directory or none), which old releases to prune, the systemd
unit and the secrets env file of the app definition (turnout.appdef), release.json.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping
from typing import Any

MARKER = ".artifact-sha256"
HARDENING = ("NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
             "ProtectKernelTunables=yes", "ProtectKernelModules=yes", "ProtectControlGroups=yes",
             "RestrictSUIDSGID=yes", "LockPersonality=yes")


class ReleaseError(ValueError):
    """An artifact or a request the host must not act on (one line: what and why)."""


def succeeded(result: Any) -> bool:
    """A registered task result of this run that ran and succeeded (not skipped, failed or
    unreachable)."""
    return isinstance(result, Mapping) and not any(
        result.get(key) for key in ("failed", "skipped", "unreachable"))


def current(read: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What a host runs, from this run's ``turnout_release`` read (``app_release_read_result``):
    its release.json plus the unit's state as ``service``; ``{}`` when the host has no release;
    None when the read did not run or did not succeed (skipped, failed, unreachable)."""
    if not succeeded(read) or "release" not in read:
        return None
    release = read.get("release")
    return {**release, "service": read.get("active")} if release else {}


def members_plan(names: Iterable[str]) -> int:
    """How many leading path components to strip from an artifact's members: 1 when every
    member lies in one top-level directory (``app-1.2.3/...``), else 0. Absolute paths and
    ``..`` are refused: an artifact never writes outside its release directory."""
    names = [n for n in names if n not in ("", ".", "./")]
    if not names:
        raise ReleaseError("the artifact is empty")
    tops = set()
    for name in names:
        if name.startswith("/") or ".." in name.split("/"):
            raise ReleaseError(f"the artifact has a member outside its release: {name[:80]!r}")
        parts = name.removeprefix("./").strip("/").split("/")
        tops.add(parts[0])
    if len(tops) == 1 and any("/" in n.removeprefix("./").strip("/") for n in names):
        return 1
    return 0


def prune(releases: Mapping[str, float], current: str | None, keep: int) -> list[str]:
    """The release directories to remove: all but the ``keep`` newest (by mtime), never the
    one ``current`` points at."""
    ordered = sorted(releases, key=lambda name: (releases[name], name), reverse=True)
    ordered = [name for name in ordered if name != current]
    return ordered[max(keep - 1, 0):]


def pruned_artifact(artifact: str | None, version: str, pruned: str) -> str | None:
    """The artifact file of release ``pruned``, given the file name ``artifact`` of release
    ``version`` (the app definition's pattern filled in): that name with the version swapped,
    never a match by substring (pruning 1.2 keeps app-1.2.3.tar.gz)."""
    if not artifact or version not in artifact:
        return None
    return artifact.replace(version, pruned, 1)


def _quote(value: str, specifiers: bool = True) -> str:
    """A double-quoted value for systemd: ``Environment=`` (unit file: ``%`` starts a specifier,
    so it is doubled) or, with ``specifiers=False``, an ``EnvironmentFile=`` line (no
    specifiers). Backslash and double quote are escaped; ``$`` is literal in both (systemd
    expands no variables there) and is escaped as ``\\$`` only in the env file, whose parser
    reads ``\\$`` as ``$``."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("%", "%%") if specifiers else escaped.replace("$", "\\$")
    return f'"{escaped}"'


def env_file(secrets: Mapping[str, str]) -> str:
    """The 0600 env file systemd reads (EnvironmentFile=): one NAME="value" per secret."""
    return "".join(f"{name}={_quote(str(value), specifiers=False)}\n"
                   for name, value in sorted(secrets.items()))


def unit(app: Mapping[str, Any], pool: str, host: str, worker: bool = False) -> str:
    """The systemd unit of the app definition (turnout.appdef.AppDef.as_facts()) on one host:
    an unprivileged user, the start command in the current release (a worker host's own
    start command when the definition has one), the environment, the secrets env file, stop
    signal and timeout, and the hardening turnout keeps."""
    env = {"APP_PORT": str(app["port"]), "APP_BIND": app["bind"], "APP_POOL": pool,
           "APP_HOST": host, "APP_RELEASE_DIR": f"{app['root']}/current",
           **{k: str(v) for k, v in (app.get("env") or {}).items()}}
    start = app["exec_start"]
    if worker and (app.get("workers") or {}).get("exec_start"):
        start = app["workers"]["exec_start"]
    lines = [
        "# Written by turnout (turnout.release.unit); changes are overwritten.",
        "[Unit]",
        f"Description=turnout: {app['name']} ({pool} pool{', worker' if worker else ''})",
        "After=network.target",
        f"ConditionPathExists={app['root']}/current",
        "",
        "[Service]",
        "Type=simple",
        f"User={app['user']}",
        f"Group={app['user']}",
        *(f"Environment={name}={_quote(value)}" for name, value in env.items()),
        f"EnvironmentFile=-{app['secrets_file']}",
        f"WorkingDirectory={app['working_directory']}",
        f"ExecStart={start}",
        f"KillSignal={app['stop']['signal']}",
        f"TimeoutStopSec={app['stop']['timeout_s']}",
        "Restart=on-failure",
        "RestartSec=1",
        *HARDENING,
    ]
    if app.get("writable"):
        lines.append("ReadWritePaths=" + " ".join(shlex.quote(p) for p in app["writable"]))
    lines += ["", "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


def record(name: str, version: str, sha256: str, pool: str, at: str, by: str,
           run_id: str) -> str:
    """release.json, written on activation."""
    return json.dumps({"app": name, "version": version, "sha256": sha256, "pool": pool,
                       "activated_at": at, "activated_by": by, "run_id": run_id},
                      indent=2, sort_keys=False) + "\n"
