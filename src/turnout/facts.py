"""Live facts, read-only and fast: the LB's Runtime API and each host's release.json.

One OpenSSH command per host, all in parallel, with the same options Ansible uses (and its
ControlPersist sockets), so `status` and `report` answer in about a second for 20 hosts.
"""

from __future__ import annotations

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from turnout import contracts, haproxy
from turnout.inventory import DEFAULT_APP_ROOT, Environment, Host, ssh_argv

SPLIT = "@@turnout@@"
SSH_TIMEOUT_S = 15.0


@dataclass
class LbFacts:
    """What the load balancer says: where the map routes, and each server's state."""

    host: str
    live_pool: str | None = None
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    backends: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str | None = None

    def as_report_input(self) -> dict[str, Any] | None:
        if self.error:
            return None
        return {"active_backend": f"be_{self.live_pool}" if self.live_pool else None,
                "servers": self.servers}


@dataclass
class FleetFacts:
    lb: LbFacts
    hosts: dict[str, dict[str, Any] | None]
    elapsed_s: float


def _sudo(host: Host, command: str) -> str:
    if host.user in (None, "root"):
        return command
    return f"sudo -n sh -c {json.dumps(command)}"


def _ssh(host: Host, command: str) -> tuple[int, str, str]:
    try:
        proc = subprocess.run(ssh_argv(host, command), capture_output=True, text=True,
                              timeout=SSH_TIMEOUT_S, stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        return 255, "", f"ssh timed out after {SSH_TIMEOUT_S:.0f}s"
    return proc.returncode, proc.stdout, proc.stderr


def runtime_api(lb: Host, *commands: str) -> list[str]:
    """Run Runtime API commands on the LB (one connection each); return their outputs."""
    socket = contracts.path("admin_socket", lb.vars)
    script = f"; echo {SPLIT}; ".join(
        f"echo {json.dumps(cmd)} | socat stdio UNIX-CONNECT:{socket}" for cmd in commands)
    rc, out, err = _ssh(lb, _sudo(lb, script))
    if rc != 0:
        raise RuntimeError(err.strip().splitlines()[-1] if err.strip() else f"ssh exit {rc}")
    return [part.strip("\n") for part in out.split(SPLIT)]


def lb_facts(lb: Host) -> LbFacts:
    try:
        pool_map = contracts.path("pool_map", lb.vars)
        show_map, show_stat = runtime_api(lb, f"show map {pool_map}", "show stat")
    except RuntimeError as exc:
        return LbFacts(host=lb.name, error=f"load balancer {lb.name} unreachable: {exc}")
    return lb_facts_from(lb.name, show_map, show_stat)


def lb_facts_from(lb_name: str, show_map: str, show_stat: str) -> LbFacts:
    """Pure: Runtime API output -> LbFacts, servers keyed by name with their backend."""
    stats = haproxy.parse_show_stat(show_stat)
    servers = {name: {**fields, "backend": backend}
               for backend, members in stats.get("servers", {}).items()
               for name, fields in members.items()}
    return LbFacts(host=lb_name, live_pool=haproxy.active_pool(show_map), servers=servers,
                   backends=stats.get("backends", {}))


def host_release(host: Host) -> dict[str, Any]:
    """The host's own release.json (plus whether app.service is active), or an error entry."""
    root = host.vars.get("app_release_root", DEFAULT_APP_ROOT)
    rc, out, err = _ssh(host, f"cat {root}/release.json 2>/dev/null || echo '{{}}'; "
                              f"echo {SPLIT}; systemctl is-active app.service || true")
    if rc != 0:
        reason = err.strip().splitlines()[-1] if err.strip() else f"ssh exit {rc}"
        return {"error": f"unreachable: {reason}"}
    release_text, _, active = out.partition(SPLIT)
    try:
        release = json.loads(release_text) or {}
    except ValueError:
        return {"error": "release.json is not valid JSON", "service": active.strip()}
    release["service"] = active.strip()
    return release


def gather(env: Environment) -> FleetFacts:
    """Query the LB and every app host in parallel."""
    started = time.monotonic()
    hosts = env.app_hosts()
    with ThreadPoolExecutor(max_workers=min(32, len(hosts) + 1)) as pool:
        lb_future = pool.submit(lb_facts, env.lb[0])
        releases = dict(zip([h.name for h in hosts], pool.map(host_release, hosts), strict=True))
        lb = lb_future.result()
    return FleetFacts(lb=lb, hosts=releases, elapsed_s=time.monotonic() - started)
