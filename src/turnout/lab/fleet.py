"""Boot, inspect and tear down a lab: real Debian 12 hosts under systemd-nspawn.

Each host is an overlay mount on the cached base with its own upper directory, its own
address on a private bridge, systemd as PID 1 and sshd with host keys the lab generated (so
host key checking stays on without trust-on-first-use). Everything created is recorded in
``<state_dir>/state.json`` and removed by name/PID on ``down``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from turnout.errors import InputError, TurnoutError
from turnout.lab import base
from turnout.lab.config import (
    LabConfig,
    LabHost,
    hosts_file,
    inventory,
    known_hosts_lines,
    network_unit,
    ssh_config_text,
    ssh_options,
    sudoers_line,
)

NSPAWN_RUNTIME = Path("/run/systemd/nspawn")
# Every container's systemd holds inotify instances, all charged to host uid 0; the kernel's
# default of 128 runs out after a few labs ("Failed to create inotify object") and sshd never
# starts. lab.up raises these limits (never lowers them).
SYSCTL_MINIMUMS = {
    Path("/proc/sys/fs/inotify/max_user_instances"): 8192,
    Path("/proc/sys/fs/inotify/max_user_watches"): 524288,
}
CGROUP_HIERARCHIES = (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"))
BOOT_DEADLINE_S = 90.0


@dataclass
class HostStatus:
    name: str
    group: str
    address: str
    running: bool
    sshd: bool
    systemd: str  # output of `systemctl is-system-running`, or "-"


def require_root() -> None:
    if os.geteuid() != 0:
        raise InputError("the lab needs root (it creates bridges, mounts and containers): "
                         "run it as root, e.g. 'sudo -E invoke lab.up'")


def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise TurnoutError(f"{' '.join(argv)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def _load_state(config: LabConfig) -> dict:
    path = config.state_dir / "state.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError:
        return {}


def _save_state(config: LabConfig, state: dict) -> None:
    path = config.state_dir / "state.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _pid_is_host(pid: int | None, machine: str) -> bool:
    """True if pid is the systemd-nspawn process of this machine (guards against PID reuse)."""
    if not pid:
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(argv) and argv[0].endswith(b"systemd-nspawn") and machine.encode() in argv


def _nspawn_pids(prefix: str) -> dict[str, int]:
    """Every systemd-nspawn process whose machine name starts with prefix (for sweeping)."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or not argv[0].endswith(b"systemd-nspawn"):
            continue
        for i, arg in enumerate(argv[:-1]):
            if arg == b"-M" and argv[i + 1].decode().startswith(prefix):
                found[argv[i + 1].decode()] = int(entry.name)
    return found


def _is_mountpoint(path: Path) -> bool:
    target = str(path)
    with open("/proc/self/mountinfo") as mounts:
        return any(line.split()[4] == target for line in mounts)


def _raise_kernel_limits(log) -> None:
    for path, minimum in SYSCTL_MINIMUMS.items():
        try:
            current = int(path.read_text().split()[0])
            if current < minimum:
                path.write_text(f"{minimum}\n")
                print(f"lab: raised {path.name} from {current} to {minimum}", file=log)
        except (OSError, ValueError) as exc:
            print(f"lab: warning: could not raise {path}: {exc}", file=log)


def _link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def _ensure_bridge(config: LabConfig) -> bool:
    if _link_exists(config.bridge):
        return False
    _run(["ip", "link", "add", config.bridge, "type", "bridge"])
    _run(["ip", "addr", "add", f"{config.gateway}/{config.network.prefixlen}",
          "dev", config.bridge])
    _run(["ip", "link", "set", config.bridge, "up"])
    return True


def _ensure_keys(config: LabConfig, hosts: list[LabHost]) -> dict[str, str]:
    """The lab's client key, and one ed25519 host key per host (public halves returned)."""
    config.state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(config.state_dir, 0o700)
    for key_file, comment in {config.key_file: f"turnout-{config.name}",
                              config.user_key_file: f"{config.user}@turnout-{config.name}"}.items():
        if not key_file.exists():
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment,
                  "-f", str(key_file)])
    keys_dir = config.state_dir / "hostkeys"
    keys_dir.mkdir(exist_ok=True)
    public: dict[str, str] = {}
    for host in hosts:
        key = keys_dir / f"{host.name}_ed25519"
        if not key.exists():
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{host.name}",
                  "-f", str(key)])
        public[host.name] = key.with_suffix(".pub").read_text().strip()
    return public


def _prepare_root(config: LabConfig, host: LabHost, base_root: Path) -> Path:
    """A fresh overlay for host: base below, per-host upper with its identity and keys."""
    host_dir = config.host_dir(host.name)
    root = host_dir / "root"
    if _is_mountpoint(root):
        _run(["umount", str(root)])
    shutil.rmtree(host_dir, ignore_errors=True)
    upper, work = host_dir / "upper", host_dir / "work"
    for directory in (upper, work, root):
        directory.mkdir(parents=True)

    def put(rel: str, text: str | bytes, mode: int = 0o644) -> None:
        path = upper / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        os.chmod(path, mode)

    put("etc/hostname", host.name + "\n")
    put("etc/hosts", hosts_file(host, config))
    put("etc/machine-id", uuid.uuid4().hex + "\n", 0o444)
    put("etc/systemd/network/10-host0.network", network_unit(host, config))
    put("root/.ssh/authorized_keys", config.key_file.with_suffix(".pub").read_text(), 0o600)
    os.chmod(upper / "root/.ssh", 0o700)
    os.chmod(upper / "root", 0o700)
    key = config.state_dir / "hostkeys" / f"{host.name}_ed25519"
    put("etc/ssh/ssh_host_ed25519_key", key.read_bytes(), 0o600)
    put("etc/ssh/ssh_host_ed25519_key.pub", key.with_suffix(".pub").read_bytes(), 0o644)
    _run(["mount", "-t", "overlay", "overlay", "-o",
          f"lowerdir={base_root},upperdir={upper},workdir={work}", str(root)])
    if config.user != "root":
        _add_user(config, root)
    return root


def _add_user(config: LabConfig, root: Path) -> None:
    """The lab user on a host's (mounted, not yet booted) root: a home, its own key, and
    passwordless sudo, as a production deploy user has."""
    _run(["useradd", "--root", str(root), "--create-home", "--user-group", "--shell",
          "/bin/bash", config.user])
    entry = next(line.split(":") for line in (root / "etc/passwd").read_text().splitlines()
                 if line.split(":")[0] == config.user)
    uid, gid, home = int(entry[2]), int(entry[3]), root / entry[5].lstrip("/")
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    keys = ssh_dir / "authorized_keys"
    keys.write_text(config.user_key_file.with_suffix(".pub").read_text())
    keys.chmod(0o600)
    for path in (ssh_dir, keys):
        os.chown(path, uid, gid)
    sudoers = root / "etc/sudoers.d" / f"turnout-{config.user}"
    sudoers.write_text(sudoers_line(config.user))
    sudoers.chmod(0o440)


def cgroup_dirs(machine: str) -> list[Path]:
    """The host's own cgroup in each mounted hierarchy (the benchmark reads its CPU there)."""
    return [h / f"turnout.{machine}" for h in CGROUP_HIERARCHIES if h.is_dir()]


def _boot(config: LabConfig, host: LabHost, root: Path) -> int:
    """Start systemd-nspawn for host in its own session and cgroup; return its PID."""
    cgroups = cgroup_dirs(host.machine)
    for directory in cgroups:
        directory.mkdir(exist_ok=True)

    def enter_cgroup() -> None:  # runs in the child before exec
        for directory in cgroups:
            (directory / "cgroup.procs").write_text(str(os.getpid()))

    log = open(config.host_dir(host.name) / "console.log", "ab")
    proc = subprocess.Popen(
        ["systemd-nspawn", "-q", "-D", str(root), "-b", "-M", host.machine,
         f"--network-bridge={config.bridge}", "--register=no", "--keep-unit",
         "--console=passive"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        start_new_session=True, preexec_fn=enter_cgroup,
    )
    log.close()
    return proc.pid


def _stop_pid(pid: int, machine: str, deadline_s: float = 20.0) -> None:
    if not _pid_is_host(pid, machine):
        return
    os.kill(pid, signal.SIGTERM)  # nspawn asks the container's systemd to power off
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if not _pid_is_host(pid, machine):
            break
        try:
            os.waitpid(pid, os.WNOHANG)  # reap if it is our child
        except ChildProcessError:
            pass
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        while _pid_is_host(pid, machine):
            time.sleep(0.05)


def _remove_cgroups(machine: str) -> None:
    for directory in cgroup_dirs(machine):
        # children first: nspawn leaves payload/ and supervisor/ behind
        for child in sorted(directory.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if child.is_dir():
                try:
                    child.rmdir()
                except OSError:
                    pass
        try:
            directory.rmdir()
        except OSError:
            pass


def _stop_host(config: LabConfig, name: str, record: dict) -> None:
    _stop_pid(record.get("pid") or 0, record["machine"])
    root = Path(record["root"])
    for _ in range(50):
        if not _is_mountpoint(root):
            break
        if _run(["umount", str(root)], check=False).returncode != 0:
            time.sleep(0.1)
    if _is_mountpoint(root):
        _run(["umount", "-l", str(root)])
    _remove_cgroups(record["machine"])
    veth = f"vb-{record['machine']}"
    if _link_exists(veth):
        _run(["ip", "link", "del", veth], check=False)
    shutil.rmtree(config.host_dir(name), ignore_errors=True)


def _ssh_argv(config: LabConfig, host: LabHost, command: str) -> list[str]:
    return ["ssh", *ssh_options(config), f"root@{host.address}", command]


def _sshd_up(address: str, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=timeout) as conn:
            conn.settimeout(timeout)
            return conn.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def _wait_for_ssh(config: LabConfig, host: LabHost, deadline: float) -> None:
    """Poll until a real, key-checked SSH login succeeds on host, or raise at the deadline."""
    last = ""
    while time.monotonic() < deadline:
        if _sshd_up(host.address):
            proc = subprocess.run(_ssh_argv(config, host, "true"), capture_output=True,
                                  text=True, timeout=15)
            if proc.returncode == 0:
                return
            last = proc.stderr.strip()
        time.sleep(0.2)
    raise TurnoutError(f"lab host {host.name} ({host.address}) did not accept SSH within "
                       f"{BOOT_DEADLINE_S:.0f}s: {last or 'no sshd'}; see "
                       f"{config.host_dir(host.name)}/console.log")


def write_inventory(config: LabConfig, inventory_dir: Path) -> bool:
    """Write hosts.yml for the lab; return True if it changed."""
    inventory_dir.mkdir(parents=True, exist_ok=True)
    path = inventory_dir / "hosts.yml"
    text = ("---\n# Generated by 'invoke lab.up' for lab "
            f"'{config.name}' ({config.subnet}); do not edit.\n")
    text += yaml.safe_dump(inventory(config), sort_keys=False, default_flow_style=False)
    if path.is_file() and path.read_text() == text:
        return False
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return True


def up(config: LabConfig, inventory_dir: Path | None, log=sys.stderr) -> bool:
    """Converge the lab to config: boot missing hosts, stop extra ones. Return True if changed."""
    require_root()
    for tool in ("systemd-nspawn", "ip", "ssh", "ssh-keygen", "mount"):
        if shutil.which(tool) is None:
            raise InputError(f"{tool} is not installed: run 'make deps' (apt-get install "
                             "systemd-container debootstrap iproute2 openssh-client)")
    state = _load_state(config)
    if state and state.get("subnet") != config.subnet:
        raise InputError(f"lab '{config.name}' is up on {state.get('subnet')}, not "
                         f"{config.subnet}: run 'invoke lab.down --name {config.name}' first")
    if state.get("hosts") and state.get("user", "root") != config.user:
        raise InputError(f"lab '{config.name}' is up with user {state.get('user', 'root')}, "
                         f"not {config.user}: run 'invoke lab.down --name {config.name}' first")
    base_root = base.ensure_base(log=log)
    _raise_kernel_limits(log)
    changed = False
    state.setdefault("name", config.name)
    state["subnet"] = config.subnet
    state["user"] = config.user
    state.setdefault("hosts", {})
    config.state_dir.mkdir(parents=True, exist_ok=True)
    if not _is_mountpoint(NSPAWN_RUNTIME):
        NSPAWN_RUNTIME.mkdir(parents=True, exist_ok=True)
        _run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", str(NSPAWN_RUNTIME)])
        state["nspawn_tmpfs"] = True
    if _ensure_bridge(config):
        changed = True
    state["bridge"] = config.bridge
    _save_state(config, state)

    desired = {h.name: h for h in config.hosts()}
    for name, record in list(state["hosts"].items()):
        if name not in desired:
            print(f"lab: stopping {name} (not in a {config.app_hosts}-host, {config.lbs}-LB "
                  "lab)", file=log)
            _stop_host(config, name, record)
            del state["hosts"][name]
            changed = True
    _save_state(config, state)

    host_keys = _ensure_keys(config, list(desired.values()))
    to_boot = [h for h in desired.values()
               if not _pid_is_host(state["hosts"].get(h.name, {}).get("pid"), h.machine)]
    started = time.monotonic()
    for host in to_boot:
        root = _prepare_root(config, host, base_root)
        pid = _boot(config, host, root)
        state["hosts"][host.name] = {"pid": pid, "machine": host.machine, "root": str(root),
                                     "address": host.address, "group": host.group}
        _save_state(config, state)
        changed = True
    state["app_hosts"] = config.app_hosts
    state["lbs"] = config.lbs
    _save_state(config, state)

    config.known_hosts.write_text(known_hosts_lines(host_keys, config))
    config.ssh_config.write_text(ssh_config_text(config))
    if inventory_dir is not None:
        changed |= write_inventory(config, inventory_dir)
        state["inventory"] = str(inventory_dir / "hosts.yml")
        _save_state(config, state)
    deadline = time.monotonic() + BOOT_DEADLINE_S
    with ThreadPoolExecutor(max_workers=len(desired)) as pool:
        list(pool.map(lambda h: _wait_for_ssh(config, h, deadline), desired.values()))
    if to_boot:
        print(f"lab: {len(to_boot)} host(s) booted to SSH in "
              f"{time.monotonic() - started:.1f}s", file=log)
    return changed


def down(config: LabConfig, log=sys.stderr) -> list[str]:
    """Remove every process, mount, veth, cgroup and bridge of the lab; keep the base cache."""
    require_root()
    state = _load_state(config)
    removed: list[str] = []
    records = dict(state.get("hosts", {}))
    # Sweep by name too, so a lost or stale state file cannot leave a host behind.
    for machine, pid in _nspawn_pids(f"{config.name}-").items():
        name = machine.removeprefix(f"{config.name}-")
        records.setdefault(name, {"machine": machine, "pid": pid,
                                  "root": str(config.host_dir(name) / "root")})
        records[name]["pid"] = pid
    hosts_dir = config.state_dir / "hosts"
    if hosts_dir.is_dir():
        for host_dir in hosts_dir.iterdir():
            records.setdefault(host_dir.name, {"machine": f"{config.name}-{host_dir.name}",
                                               "pid": 0, "root": str(host_dir / "root")})
    for name, record in sorted(records.items()):
        _stop_host(config, name, record)
        removed.append(name)
    if _link_exists(config.bridge):
        _run(["ip", "link", "del", config.bridge])
        removed.append(config.bridge)
    inventory_file = state.get("inventory")
    if inventory_file and Path(inventory_file).is_file():
        Path(inventory_file).unlink()
    shutil.rmtree(config.state_dir, ignore_errors=True)
    others = list(config.state_root.glob("*/state.json")) if config.state_root.is_dir() else []
    if state.get("nspawn_tmpfs") and not others and _is_mountpoint(NSPAWN_RUNTIME):
        _run(["umount", str(NSPAWN_RUNTIME)], check=False)
    return removed


def status(config: LabConfig) -> list[HostStatus]:
    """Each host: address, whether its nspawn runs, sshd answers, and systemd's state."""
    state = _load_state(config)

    def one(host: LabHost) -> HostStatus:
        record = state.get("hosts", {}).get(host.name, {})
        running = _pid_is_host(record.get("pid"), host.machine)
        sshd = running and _sshd_up(host.address)
        systemd = "-"
        if sshd:
            proc = subprocess.run(_ssh_argv(config, host, "systemctl is-system-running"),
                                  capture_output=True, text=True, timeout=20)
            systemd = proc.stdout.strip() or f"ssh failed: {proc.stderr.strip()[:60]}"
        return HostStatus(host.name, host.group, host.address, running, sshd, systemd)

    hosts = config.hosts() if not state else [
        h for h in LabConfig(config.name, config.subnet, state.get("app_hosts", 2),
                             config.state_root, state.get("lbs", 1)).hosts()]
    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        return list(pool.map(one, hosts))


def is_up(config: LabConfig) -> bool:
    return bool(_load_state(config).get("hosts"))


def ssh_argv(config: LabConfig, host_name: str, command: str | None = None) -> list[str]:
    """argv for an interactive (or one-command) SSH session to a lab host."""
    require_root()
    state = _load_state(config)
    if not state:
        raise InputError(f"lab '{config.name}' is not up: run 'invoke lab.up' first")
    cfg = LabConfig(config.name, config.subnet, state.get("app_hosts", config.app_hosts),
                    config.state_root, state.get("lbs", config.lbs))
    host = cfg.host(host_name)
    argv = ["ssh", *ssh_options(cfg, batch=False), f"root@{host.address}"]
    if command:
        argv.append(command)
    return argv


def _host_pids(machine: str) -> set[int]:
    """Every process in the host's cgroups: nspawn, the container's init and all below it."""
    pids: set[int] = set()
    for directory in cgroup_dirs(machine):
        for procs in directory.rglob("cgroup.procs"):
            try:
                pids.update(int(p) for p in procs.read_text().split())
            except (OSError, ValueError):
                continue
    return pids


def power_off(config: LabConfig, host_name: str, deadline_s: float = 20.0) -> None:
    """Pull the plug on one lab host: SIGKILL to nspawn AND every process of the container
    (killing nspawn alone leaves the container running). No shutdown; its disk is kept.

    For failure drills; :func:`power_on` boots it again from the same overlay.
    """
    require_root()
    host = config.host(host_name)
    deadline = time.monotonic() + deadline_s
    while pids := _host_pids(host.machine):
        if time.monotonic() > deadline:
            raise TurnoutError(f"lab host {host_name} still has processes {sorted(pids)[:5]} "
                               f"after {deadline_s}s")
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in pids:
            try:
                os.waitpid(pid, os.WNOHANG)  # reap nspawn if it is our child
            except ChildProcessError:
                pass
        time.sleep(0.05)


def power_on(config: LabConfig, host_name: str) -> None:
    """Boot a host stopped by :func:`power_off` with its disk as it was; wait for SSH."""
    require_root()
    host = config.host(host_name)
    state = _load_state(config)
    record = state.get("hosts", {}).get(host_name)
    if record is None:
        raise TurnoutError(f"lab host {host_name} was never booted: run 'invoke lab.up'")
    if _pid_is_host(record.get("pid"), host.machine):
        return
    root = Path(record["root"])
    if not _is_mountpoint(root):
        host_dir = config.host_dir(host_name)
        _run(["mount", "-t", "overlay", "overlay", "-o",
              f"lowerdir={base.ensure_base()},upperdir={host_dir / 'upper'},"
              f"workdir={host_dir / 'work'}", str(root)])
    veth = f"vb-{host.machine}"
    deadline = time.monotonic() + 10
    while _link_exists(veth) and time.monotonic() < deadline:  # the old veth goes with its netns
        time.sleep(0.05)
    record["pid"] = _boot(config, host, root)
    _save_state(config, state)
    _wait_for_ssh(config, host, time.monotonic() + BOOT_DEADLINE_S)
