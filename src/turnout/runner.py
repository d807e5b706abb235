"""The only code that calls ansible_runner: runs one playbook, returns a typed result.

Argument building (`build_run_args`) is pure and tested without Ansible; `run_playbook` does the
I/O: a fresh private_data_dir per run (removed afterwards, so extra vars never linger on disk),
host key checking forced ON, and per-play / per-host progress lines.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turnout.cli import LAYOUT
from turnout.errors import InputError

CONTENT = LAYOUT.content  # playbooks, roles, plugins, ansible.cfg (checkout or packaged)
PLAYBOOKS = CONTENT / "playbooks"

# Environment every run gets: the project's ansible.cfg (roles, plugins, SSH settings) and
# host key checking, which ansible-runner turns off unless told otherwise.
BASE_ENV = {
    "ANSIBLE_HOST_KEY_CHECKING": "True",
    "ANSIBLE_CONFIG": str(CONTENT / "ansible.cfg"),
    # ansible-runner prepends its own callback dir to this; without it ansible.cfg's is lost
    "ANSIBLE_CALLBACK_PLUGINS": str(CONTENT / "plugins" / "callback"),
    "ANSIBLE_RETRY_FILES_ENABLED": "False",
    "ANSIBLE_NOCOLOR": "True",
}
# Variables passed through from the caller's environment (secrets stay in the environment).
PASSTHROUGH_ENV = ("ANSIBLE_VAULT_PASSWORD_FILE", "SSH_AUTH_SOCK", "TURNOUT_BY", "USER", "HOME",
                   "PATH", "TURNOUT_INVENTORIES", "ANSIBLE_CALLBACKS_ENABLED",
                   "ANSIBLE_SSH_CONTROL_PATH_DIR", "TURNOUT_PROFILE_FILE",
                   # your own ssh/sftp (the benchmark's counting wrappers use these too)
                   "ANSIBLE_SSH_EXECUTABLE", "ANSIBLE_SFTP_EXECUTABLE", "TURNOUT_SSH_LOG")


@dataclass(frozen=True)
class RunArgs:
    """Everything that determines one ansible-runner invocation."""

    playbook: Path
    inventory: Path
    extravars: dict[str, Any]
    envvars: dict[str, str]


@dataclass
class HostStats:
    ok: int = 0
    changed: int = 0
    failures: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0


@dataclass
class RunResult:
    """What a playbook run did: rc, status, per-host stats, and the hosts that failed."""

    rc: int
    status: str
    stats: dict[str, HostStats] = field(default_factory=dict)
    failed_hosts: list[str] = field(default_factory=list)
    unreachable_hosts: list[str] = field(default_factory=list)
    failure_messages: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.rc == 0 and self.status == "successful"


def playbook_path(name: str) -> Path:
    path = PLAYBOOKS / f"{name}.yml"
    if not path.is_file():
        raise InputError(f"no playbook {name}.yml in {PLAYBOOKS}")
    return path


def build_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Pure: the environment of a run: fixed settings plus a short pass-through list."""
    environ = dict(os.environ if environ is None else environ)
    envvars = dict(BASE_ENV)
    for name in PASSTHROUGH_ENV:
        if environ.get(name):
            envvars[name] = environ[name]
    # ansible-runner starts `ansible-playbook` by name: use the one beside this interpreter.
    bin_dir = str(Path(sys.executable).parent)
    envvars["PATH"] = os.pathsep.join([bin_dir, envvars.get("PATH", os.defpath)])
    return envvars


def build_run_args(playbook: str, inventory: Path, extravars: dict[str, Any],
                   environ: dict[str, str] | None = None) -> RunArgs:
    """Pure: deterministic arguments for a run (extra vars sorted, env restricted)."""
    if not inventory.is_absolute():
        raise InputError(f"inventory path must be absolute (got {inventory})")
    envvars = build_env(environ)
    if LAYOUT.installed:  # dist/ and hooks are in the workspace, not next to the playbooks
        extravars = {"turnout_project_dir": str(LAYOUT.workspace), **extravars}
    clean = {k: extravars[k] for k in sorted(extravars) if extravars[k] is not None}
    return RunArgs(playbook=playbook_path(playbook), inventory=inventory, extravars=clean,
                   envvars=envvars)


def summarize(rc: int, status: str, stats: dict[str, dict[str, int]] | None,
              failure_messages: list[str]) -> RunResult:
    """Pure: turn ansible-runner's stats dict into a RunResult."""
    stats = stats or {}
    keys = {"ok": "ok", "changed": "changed", "failures": "failures", "dark": "unreachable",
            "skipped": "skipped", "rescued": "rescued"}
    per_host: dict[str, HostStats] = {}
    for runner_key, attr in keys.items():
        for host, count in (stats.get(runner_key) or {}).items():
            setattr(per_host.setdefault(host, HostStats()), attr, count)
    return RunResult(
        rc=rc, status=status, stats=per_host,
        failed_hosts=sorted(h for h, s in per_host.items() if s.failures),
        unreachable_hosts=sorted(h for h, s in per_host.items() if s.unreachable),
        failure_messages=failure_messages,
    )


def progress_line(event: dict[str, Any]) -> str | None:
    """Pure: a short progress line for an ansible-runner event, or None to stay quiet."""
    kind = event.get("event", "")
    data = event.get("event_data", {})
    if kind == "playbook_on_play_start":
        return f"== {data.get('play', '').strip()}"
    host = data.get("host", "")
    task = data.get("task", "")
    if kind == "runner_on_failed" and not data.get("ignore_errors"):
        msg = (data.get("res") or {}).get("msg", "")
        return f"   FAILED {host}: {task}: {str(msg).splitlines()[0] if msg else ''}".rstrip()
    if kind == "runner_on_unreachable":
        return f"   UNREACHABLE {host}: {task}"
    return None


def run_playbook(args: RunArgs, on_line: Callable[[str], None] | None = None,
                 quiet: bool = True,
                 on_event: Callable[[dict[str, Any]], None] | None = None) -> RunResult:
    """Run the playbook with ansible-runner in a fresh private_data_dir; return the result.

    Progress goes to `on_event` (every ansible-runner event, e.g. turnout.progress) when
    given, else to `on_line` (progress_line's lines)."""
    kwargs: dict[str, Any] = {"playbook": str(args.playbook), "extravars": args.extravars}
    return _run(args.inventory, args.envvars, kwargs, on_line, quiet, on_event)


def run_module(inventory: Path, pattern: str, module: str, module_args: str = "",
               environ: dict[str, str] | None = None,
               on_line: Callable[[str], None] | None = None) -> RunResult:
    """Run one ad-hoc module (e.g. ping) against pattern, with the same settings as playbooks."""
    envvars = build_env(environ)
    kwargs: dict[str, Any] = {"host_pattern": pattern, "module": module}
    if module_args:
        kwargs["module_args"] = module_args
    return _run(inventory, envvars, kwargs, on_line, True)


SHIM = """#!/bin/sh
# turnout: the playbook dies with the process that started it. ansible-runner's pexpect puts
# ansible-playbook in its own session, so killing the caller's process group would leave it
# running (holding the deploy lock); PR_SET_PDEATHSIG makes the kernel kill it instead.
exec setpriv --pdeathsig KILL -- {target} "$@"
"""


def with_parent_death_shim(envvars: dict[str, str], shim_dir: Path) -> dict[str, str]:
    """Put ansible/ansible-playbook wrappers first on PATH that die with their parent."""
    if shutil.which("setpriv") is None:  # util-linux; present on every Debian system
        return envvars
    shim_dir.mkdir(parents=True, exist_ok=True)
    search = envvars.get("PATH", os.defpath)
    for name in ("ansible-playbook", "ansible"):
        target = shutil.which(name, path=search)
        if target is None:
            continue
        shim = shim_dir / name
        shim.write_text(SHIM.format(target=target))
        shim.chmod(0o755)
    return {**envvars, "PATH": os.pathsep.join([str(shim_dir), search])}


def _run(inventory: Path, envvars: dict[str, str], kwargs: dict[str, Any],
         on_line: Callable[[str], None] | None, quiet: bool,
         on_event: Callable[[dict[str, Any]], None] | None = None) -> RunResult:
    import ansible_runner  # imported here: it is slow to import and only needed to act

    failure_messages: list[str] = []

    def handler(event: dict[str, Any]) -> bool:
        if on_event:
            on_event(event)
        elif on_line and (line := progress_line(event)):
            on_line(line)
        if event.get("event") == "runner_on_failed":
            data = event.get("event_data", {})
            if not data.get("ignore_errors"):
                msg = (data.get("res") or {}).get("msg", "")
                failure_messages.append(f"{data.get('host')}: {msg}")
        return True  # ansible-runner drops events whose handler returns False

    private = Path(tempfile.mkdtemp(prefix="turnout-run-"))
    envvars = with_parent_death_shim(envvars, private / "bin")
    try:
        result = ansible_runner.run(
            private_data_dir=str(private), project_dir=str(CONTENT),
            inventory=str(inventory), envvars=envvars, quiet=quiet,
            event_handler=handler, suppress_env_files=True, **kwargs,
        )
        return summarize(result.rc, result.status, result.stats, failure_messages)
    finally:
        shutil.rmtree(private, ignore_errors=True)
