"""Environments: `inventories/<env>/` with hosts.yml, group_vars/, host_vars/ and manifest.yml.

`load_environment` reads a YAML inventory directly (no Ansible import: read-only views must
answer in about a second) and returns the groups turnout needs (lb, blue, green) with the
connection settings of each host. Playbooks still read the same files through Ansible.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from turnout import run
from turnout.contracts import POOLS
from turnout.errors import InputError

ENV_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
# Where SSH control sockets live, for Ansible (ansible.cfg control_path_dir says the same) and
# for turnout's own OpenSSH commands, so they share masters; ANSIBLE_SSH_CONTROL_PATH_DIR
# overrides both. Per user: whoever can write this directory can put a socket there that
# every later ssh command trusts as its connection to the host.
CONTROL_DIR = "~/.ansible/cp"
DEFAULT_APP_ROOT = "/srv/app"
DEFAULT_APP_PORT = 8080


@dataclass(frozen=True)
class Host:
    """One inventory host and how to reach it over SSH."""

    name: str
    address: str
    user: str | None = None
    port: int | None = None
    key_file: str | None = None
    ssh_args: tuple[str, ...] = ()
    vars: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Environment:
    """A deploy target: its inventory, load balancer(s), pools and manifest path."""

    name: str
    directory: Path
    hosts_file: Path
    lb: tuple[Host, ...]
    pools: dict[str, tuple[Host, ...]]
    # hosts of <pool>_workers: they get their pool's releases and run the app's worker, with
    # no traffic (not servers of any load balancer)
    workers: dict[str, tuple[Host, ...]] = field(default_factory=dict)

    @property
    def manifest_path(self) -> Path:
        """``turnout_manifest_path`` from the inventory (as the playbooks read it), else
        ``<inventory dir>/manifest.yml`` (turnout.run.manifest_path)."""
        configured = self.lb[0].vars.get("turnout_manifest_path") if self.lb else None
        return run.manifest_path(self.directory, configured)

    def pool_of(self, host: str) -> str | None:
        for pool, members in self.pools.items():
            if any(h.name == host for h in members):
                return pool
        return None

    def app_hosts(self) -> list[Host]:
        return [h for pool in POOLS for h in self.pools[pool]]

    def pool_names(self) -> dict[str, list[str]]:
        return {pool: [h.name for h in hosts] for pool, hosts in self.pools.items()}

    def worker_hosts(self) -> list[Host]:
        return [h for pool in POOLS for h in self.workers.get(pool, ())]

    def worker_names(self) -> dict[str, list[str]]:
        return {pool: [h.name for h in hosts] for pool, hosts in self.workers.items()}


def validate_env_name(name: str) -> str:
    if name is None:
        raise InputError("--env is required: name the environment, a directory of "
                         "inventories/ (e.g. --env prod)")
    if not isinstance(name, str) or not ENV_RE.match(name):
        raise InputError(f"invalid environment name {name!r}: use lowercase letters, digits, "
                         "'-' or '_' (e.g. 'prod')")
    return name


def env_dir(name: str, root: Path) -> Path:
    """The directory of environment `name`, or an InputError listing the known ones."""
    validate_env_name(name)
    directory = root / name
    if not (directory / "hosts.yml").is_file():
        known = sorted(p.parent.name for p in root.glob("*/hosts.yml")) if root.is_dir() else []
        hint = (f"known: {', '.join(known)}" if known else
                f"create {directory}/hosts.yml (or run 'invoke lab.up' for the lab)")
        raise InputError(f"unknown environment '{name}': no {directory}/hosts.yml; {hint}")
    return directory


def _vars_file(directory: Path, name: str) -> dict[str, Any]:
    """group_vars/<name>.yml, group_vars/<name>/*.yml (vault-encrypted files are skipped)."""
    merged: dict[str, Any] = {}
    candidates = [directory / f"{name}.yml", directory / f"{name}.yaml"]
    if (directory / name).is_dir():
        candidates += sorted((directory / name).glob("*.y*ml"))
    for path in candidates:
        if not path.is_file():
            continue
        if path.read_text(errors="replace").startswith("$ANSIBLE_VAULT"):
            continue  # secrets are not needed to reach hosts; Ansible decrypts them itself
        data = _safe_vars(path)
        if not isinstance(data, dict):
            raise InputError(f"{path} must be a mapping of variables")
        merged.update(data)
    return merged


class _VaultTolerantLoader(yaml.SafeLoader):
    """SafeLoader that reads `!vault` values as opaque strings (never decrypted here)."""


_VaultTolerantLoader.add_constructor("!vault", lambda loader, node: "<vault>")
_VaultTolerantLoader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def _safe_vars(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(), Loader=_VaultTolerantLoader) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise InputError(f"{path}{where} is not valid YAML: fix the file") from None


def _walk(group: str, body: Any, parents: list[str], groups: dict[str, list[str]],
          group_vars: dict[str, dict], host_vars: dict[str, dict],
          host_groups: dict[str, list[str]], path: Path) -> None:
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise InputError(f"{path}: group '{group}' must be a mapping with hosts/children/vars")
    group_vars.setdefault(group, {}).update(body.get("vars") or {})
    for host, hvars in (body.get("hosts") or {}).items():
        host_vars.setdefault(host, {}).update(hvars or {})
        chain = [*parents, group]
        host_groups.setdefault(host, [])
        for name in chain:
            if name not in host_groups[host]:
                host_groups[host].append(name)
            if host not in groups.setdefault(name, []):
                groups[name].append(host)
    for child, child_body in (body.get("children") or {}).items():
        _walk(child, child_body, [*parents, group], groups, group_vars, host_vars,
              host_groups, path)


def load_environment(name: str, root: Path) -> Environment:
    """Read inventories/<name>/hosts.yml and its group_vars/host_vars."""
    directory = env_dir(name, root)
    hosts_file = directory / "hosts.yml"
    data = _safe_vars(hosts_file)
    if not isinstance(data, dict) or "all" not in data:
        raise InputError(f"{hosts_file} must be a YAML inventory with a top-level 'all' group")
    groups: dict[str, list[str]] = {}
    group_vars: dict[str, dict] = {}
    host_vars: dict[str, dict] = {}
    host_groups: dict[str, list[str]] = {}
    _walk("all", data["all"], [], groups, group_vars, host_vars, host_groups, hosts_file)
    for group in ("lb", "blue", "green"):
        if not groups.get(group):
            raise InputError(f"{hosts_file}: group '{group}' has no hosts; turnout needs groups "
                             "lb, blue and green (see README, 'Point it at real servers')")
    overlap = set(groups["blue"]) & set(groups["green"])
    if overlap:
        raise InputError(f"{hosts_file}: {', '.join(sorted(overlap))} is in both blue and green;"
                         " a host belongs to one pool")

    def host(name_: str) -> Host:
        merged: dict[str, Any] = {}
        for group in host_groups.get(name_, ["all"]):  # parents before children
            merged.update(_vars_file(directory / "group_vars", group))
            merged.update(group_vars.get(group, {}))
        merged.update(host_vars.get(name_, {}))
        merged.update(_vars_file(directory / "host_vars", name_))
        port = merged.get("ansible_port")
        if port is not None and not (str(port).isdigit() and 0 < int(str(port)) < 65536):
            raise InputError(f"{hosts_file}: {name_}: ansible_port must be a port number "
                             f"1-65535 (got {port!r})")
        return Host(
            name=name_,
            address=str(merged.get("ansible_host", name_)),
            user=merged.get("ansible_user"),
            port=int(port) if port else None,
            key_file=merged.get("ansible_ssh_private_key_file"),
            ssh_args=tuple(shlex.split(str(merged.get("ansible_ssh_common_args", "")))),
            vars=merged,
        )

    return Environment(
        name=name,
        directory=directory,
        hosts_file=hosts_file,
        lb=tuple(host(h) for h in groups["lb"]),
        pools={pool: tuple(host(h) for h in groups[pool]) for pool in POOLS},
        workers={pool: tuple(host(h) for h in groups.get(f"{pool}_workers", [])
                             if h not in groups[pool]) for pool in POOLS},
    )


def private_dir_problem(mode: int, owner: int, euid: int, parent_mode: int,
                        parent_owner: int) -> str | None:
    """Pure: why a directory (and its parent, by their stat modes and owners) is not one that
    only user ``euid`` can write, or None when it is. A parent writable by others must be
    sticky (like /tmp), so nobody else can rename the directory away."""
    if not stat.S_ISDIR(mode):
        return "is not a directory"
    if owner != euid:
        return f"belongs to uid {owner}, not to you (uid {euid})"
    if mode & 0o022:
        return f"is writable by other users (mode {stat.S_IMODE(mode):04o})"
    if parent_owner not in (euid, 0):
        return f"is inside a directory of uid {parent_owner}"
    if parent_mode & 0o022 and not parent_mode & stat.S_ISVTX:
        return (f"is inside a directory other users can write (mode "
                f"{stat.S_IMODE(parent_mode):04o}, not sticky)")
    return None


def ensure_private_dir(path: Path, what: str) -> Path:
    """Create ``path`` (mode 0700) if missing; InputError when another user could write it."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        own, parent = path.stat(), path.parent.stat()
    except OSError as exc:
        raise InputError(f"cannot create the {what} {path}: {exc.strerror}") from None
    problem = private_dir_problem(own.st_mode, own.st_uid, os.geteuid(), parent.st_mode,
                                  parent.st_uid)
    if problem:
        raise InputError(f"the {what} {path} {problem}: only you may write it (chmod 700, or "
                         "set ANSIBLE_SSH_CONTROL_PATH_DIR to a directory of your own)")
    return path


def control_dir(environ: dict[str, str] | None = None) -> str:
    """The SSH control socket directory Ansible uses too: $ANSIBLE_SSH_CONTROL_PATH_DIR, else
    ~/.ansible/cp; created 0700 when missing, refused when another user could write it."""
    environ = dict(os.environ if environ is None else environ)
    configured = environ.get("ANSIBLE_SSH_CONTROL_PATH_DIR") or CONTROL_DIR
    path = Path(os.path.expandvars(configured)).expanduser()
    return str(ensure_private_dir(path, "SSH control socket directory"))


def ssh_argv(host: Host, command: str, control_dir_path: str | None = None) -> list[str]:
    """OpenSSH argv for one command on host, with the same options Ansible uses (and its
    control socket directory, :func:`control_dir`, unless one is given)."""
    directory = control_dir_path or control_dir()
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
            "-o", "ControlMaster=auto", "-o", "ControlPersist=60s",
            "-o", f"ControlPath={directory}/%C"]
    if host.port:
        argv += ["-p", str(host.port)]
    if host.key_file:
        argv += ["-i", str(host.key_file)]
    argv += list(host.ssh_args)
    target = f"{host.user}@{host.address}" if host.user else host.address
    return [*argv, target, command]
