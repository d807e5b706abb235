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

from turnout import appdef, contracts, haproxy
from turnout.inventory import Environment, Host, ssh_argv

SPLIT = "@@turnout@@"
SSH_TIMEOUT_S = 15.0


@dataclass
class LbFacts:
    """What one load balancer says: where the map routes (at runtime and on disk), the canary
    entries, the release map, each server's state, its copy of the fleet release state."""

    host: str
    live_pool: str | None = None
    map_file_pool: str | None = None
    canary: dict[str, Any] = field(default_factory=dict)
    releases: dict[str, str] = field(default_factory=dict)
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    backends: dict[str, dict[str, Any]] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    fleet_state: dict[str, Any] | None = None
    fleet_state_error: str | None = None
    error: str | None = None

    def as_report_input(self) -> dict[str, Any] | None:
        if self.error:
            return None
        return {"active_backend": f"be_{self.live_pool}" if self.live_pool else None,
                "servers": self.servers, "map_file_pool": self.map_file_pool,
                "canary": self.canary}

    def as_read(self) -> dict[str, Any]:
        """The shape of the turnout_lb module's ``read`` result (what turnout.traffic reads)."""
        if self.error:
            return {"error": self.error}
        return {"live_pool": self.live_pool, "map_file_pool": self.map_file_pool,
                "canary": self.canary, "releases": self.releases, "stats": self.stats,
                "fleet_state": self.fleet_state, "fleet_state_error": self.fleet_state_error}


@dataclass
class FleetFacts:
    lbs: dict[str, LbFacts]
    hosts: dict[str, dict[str, Any] | None]
    elapsed_s: float

    @property
    def lb(self) -> LbFacts:
        """The first load balancer (where the deploy lock lives)."""
        return next(iter(self.lbs.values()))

    @property
    def errors(self) -> list[str]:
        return [lb.error for lb in self.lbs.values() if lb.error]


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
    pool_map = contracts.path("pool_map", lb.vars)
    release_map = contracts.path("release_map", lb.vars)
    state_path = contracts.PATHS["fleet_state"]
    try:
        show_map, show_stat, show_releases = runtime_api(
            lb, f"show map {pool_map}", "show stat", f"show map {release_map}")
        rc, out, err = _ssh(lb, _sudo(lb, f"cat {pool_map} 2>/dev/null; echo {SPLIT}; "
                                          f"cat {state_path} 2>/dev/null || true"))
        if rc != 0:
            raise RuntimeError(err.strip().splitlines()[-1] if err.strip() else f"ssh exit {rc}")
    except RuntimeError as exc:
        return LbFacts(host=lb.name, error=f"load balancer {lb.name} unreachable: {exc}")
    map_file, _, state_text = out.partition(SPLIT)
    return lb_facts_from(lb.name, show_map, show_stat, show_releases, map_file, state_text)


def lb_facts_from(lb_name: str, show_map: str, show_stat: str, show_releases: str = "",
                  map_file: str = "", state_text: str = "") -> LbFacts:
    """Pure: Runtime API output and the files -> LbFacts, servers keyed by name with their
    backend."""
    stats = haproxy.parse_show_stat(show_stat)
    servers = {name: {**fields, "backend": backend}
               for backend, members in stats.get("servers", {}).items()
               for name, fields in members.items()}
    entries = haproxy.parse_show_map(show_map)
    try:
        pct = int(entries.get(contracts.MAP_CANARY_PCT_KEY, "0") or 0)
    except ValueError:
        pct = -1
    file_pool = haproxy.active_pool("\n".join(f"0x0 {line}" for line in map_file.splitlines()
                                              if line.strip()), strict=False)
    state, state_error = None, None
    if state_text.strip():
        try:
            state = json.loads(state_text)
        except ValueError:
            state_error = f"{contracts.PATHS['fleet_state']} is not valid JSON"
        else:
            if not isinstance(state, dict) or state.get("schema") != 1:
                state, state_error = None, "the release state file is not turnout's"
    return LbFacts(host=lb_name, live_pool=haproxy.active_pool(show_map),
                   map_file_pool=file_pool,
                   canary={"backend": entries.get(contracts.MAP_CANARY_BACKEND_KEY), "pct": pct},
                   releases=haproxy.parse_show_map(show_releases, strict=False),
                   servers=servers, backends=stats.get("backends", {}), stats=stats,
                   fleet_state=state, fleet_state_error=state_error)


def host_app(host: Host) -> appdef.AppDef:
    """The app definition this host runs (its turnout_app, app_release_root applied)."""
    raw = dict(host.vars.get("turnout_app") or {})
    if isinstance(host.vars.get("app_release_root"), str) and "{{" not in host.vars[
            "app_release_root"]:
        raw["root"] = host.vars["app_release_root"]
    return appdef.validate(raw)


def host_release(host: Host) -> dict[str, Any]:
    """The host's own release.json (plus whether the app's unit is active), or an error
    entry."""
    app = host_app(host)
    root, unit = app.root, app.unit
    rc, out, err = _ssh(host, f"cat {root}/release.json 2>/dev/null || echo '{{}}'; "
                              f"echo {SPLIT}; systemctl is-active {unit} || true")
    if rc != 0:
        reason = err.strip().splitlines()[-1] if err.strip() else f"ssh exit {rc}"
        return {"error": f"unreachable: {reason}"}
    release_text, _, active = out.partition(SPLIT)
    try:
        release = json.loads(release_text) or {}
    except ValueError:
        return {"error": "release.json is not valid JSON", "service": active.strip()}
    release["service"] = active.strip()
    release["unit"] = unit
    return release


def gather(env: Environment) -> FleetFacts:
    """Query every load balancer and every app host in parallel."""
    started = time.monotonic()
    hosts = [*env.app_hosts(), *env.worker_hosts()]
    with ThreadPoolExecutor(max_workers=min(32, len(hosts) + len(env.lb))) as pool:
        lb_futures = {lb.name: pool.submit(lb_facts, lb) for lb in env.lb}
        releases = dict(zip([h.name for h in hosts], pool.map(host_release, hosts), strict=True))
        lbs = {name: future.result() for name, future in lb_futures.items()}
    return FleetFacts(lbs=lbs, hosts=releases, elapsed_s=time.monotonic() - started)
