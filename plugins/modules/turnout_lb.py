#!/usr/bin/python
"""Module turnout_lb: one load balancer's side of a turnout run, over the HAProxy Runtime API.

A thin adapter: it talks to the admin socket and the files, and leaves every judgement to
turnout.haproxy (parsers, the canary verdict) and turnout.fleetstate (the release state),
shipped as module_utils. Each op is one module run on one LB; the playbooks run it on every
host of group ``lb`` and decide across them on the controller.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: turnout_lb
short_description: Read and change one HAProxy load balancer for a turnout run
description:
  - C(read) returns the pool the runtime map routes to, the map file's pool on disk, the
    canary entries, the release map, every server's state and counters, and the fleet release
    state file (C(/var/lib/turnout/fleet-state.json)). Changes nothing.
  - C(wait) waits until every listed server of a pool's backend is UP (deadline).
  - C(set) points the map at a pool, file first, then C(set map) until the runtime map agrees.
  - C(verify) makes N requests through the load balancer and returns each status and version.
  - C(release) sets a backend's entry in the release map (runtime, then file).
  - C(canary) sets C(canary_backend)/C(canary_pct) at runtime; C(watch) watches a backend
    for some seconds against a baseline and returns the verdict (turnout.haproxy.canary_check).
  - C(state) writes the fleet release state (atomically) unless this LB holds a newer copy.
  - C(idle) waits (up to C(timeout_s)) until the listed servers have no request in flight.
  - C(server_state) sets the listed servers to C(drain) (no new requests), C(ready) or
    C(maint).
  - C(quick) is C(read) plus, in the same run, one request per server of the pool this LB
    does not route to (all in parallel) for the version and the team's C(checks), and the
    deploy lock file when C(lock_path) is given - a rollback's quick check
    (turnout.quickcheck judges it on the controller). Changes nothing.
options:
  op:
    description: What to do.
    type: str
    required: true
    choices: [read, wait, set, verify, release, canary, watch, state, idle, server_state,
              quick]
  socket: {description: Runtime API socket (admin level)., type: path, required: true}
  pool_map: {description: The map that routes fe_app., type: path, required: true}
  release_map: {description: The map naming each backend's release., type: path}
  state_path: {description: The fleet release state file., type: path}
  pool: {description: The pool to wait for, set, name in the release map or canary., type: str}
  servers:
    description: Servers of the pool that must be UP (wait), be idle (idle) or are set
      (server_state).
    type: list
    elements: str
  server_state: {description: The state server_state sets., type: str,
                 choices: [drain, ready, maint]}
  timeout_s: {description: Deadline of wait, seconds., type: int, default: 30}
  retries: {description: Tries of set map + show map (set)., type: int, default: 10}
  url: {description: URL requested through the LB (verify)., type: str}
  requests: {description: Number of requests (verify)., type: int, default: 10}
  request_timeout_s: {description: Timeout of each request (verify)., type: float, default: 5}
  version: {description: The release to name in the release map., type: str}
  pct: {description: Share of requests for the canary pool, 0-99 (canary)., type: int}
  baseline: {description: Canary counters before the first step (watch)., type: dict}
  seconds: {description: How long to watch (watch)., type: int, default: 30}
  max_errors: {description: New errors a canary step tolerates (watch)., type: int, default: 0}
  state: {description: The fleet release state to write (state)., type: dict}
  hosts:
    description: "[{name, address, pool}] of the app hosts (quick asks the idle pool's)."
    type: list
    elements: dict
  port: {description: The app's port (quick)., type: int}
  version_check: {description: "The version check {kind, path, key, header, pattern} (quick).",
                  type: dict}
  checks: {description: "The team's extra checks [{name, path, status, contains}] (quick).",
           type: list, elements: dict, default: []}
  lock_path: {description: "The deploy lock file to read (quick; on lb[0]).", type: path}
  missing_ok:
    description: read returns C(running=false) instead of failing when HAProxy does not answer.
    type: bool
    default: false
attributes:
  check_mode:
    support: partial
    details: read, verify and watch run; the other ops report what they would change.
author:
  - turnout
"""

EXAMPLES = r"""
- name: pool_switch | read the load balancer
  turnout_lb:
    op: read
    socket: /run/haproxy/admin.sock
    pool_map: /etc/haproxy/pool.map
    release_map: /etc/haproxy/release.map
    state_path: /var/lib/turnout/fleet-state.json
"""

RETURN = r"""
live_pool: {description: Pool the runtime map routes to (read, set)., type: str, returned: success}
map_file_pool: {description: Pool the map file on disk routes to (read)., type: str,
               returned: success}
canary: {description: "{backend, pct} at runtime (read).", type: dict, returned: success}
releases: {description: Release map entries (read)., type: dict, returned: success}
stats: {description: Parsed show stat (read, wait, watch)., type: dict, returned: success}
fleet_state: {description: The fleet release state file (read)., type: dict, returned: success}
responses: {description: "[{status, version}] (verify).", type: list, returned: success}
verdict: {description: The canary verdict (watch)., type: dict, returned: success}
answers: {description: "{host: {status, version, checks, ms}} of the idle pool (quick).",
          type: dict, returned: success}
answered_pool: {description: The pool asked (quick)., type: str, returned: success}
lock: {description: The deploy lock's holder, or null (quick with lock_path)., type: dict,
       returned: success}
moved_at: {description: "When the runtime map first routed to the pool, ISO UTC (set).",
           type: str, returned: success}
"""

import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.turnout_fleetstate import STATE_PATH, StateError  # noqa: E402
from ansible.module_utils.turnout_fleetstate import read as read_state  # noqa: E402
from ansible.module_utils.turnout_fleetstate import write as write_state  # noqa: E402
from ansible.module_utils.turnout_haproxy import (  # noqa: E402
    active_pool,
    canary_check,
    parse_show_map,
    parse_show_stat,
    render_map,
    render_release_map,
    servers_up,
)
from ansible.module_utils.turnout_lock import parse as parse_lock  # noqa: E402
from ansible.module_utils.turnout_quickcheck import ask, idle_hosts  # noqa: E402

CANARY_KEYS = ("canary_backend", "canary_pct")


def runtime(path: str, command: str, timeout: float = 5.0) -> str:
    """One Runtime API command; its reply text."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(path)
        conn.sendall(command.encode() + b"\n")
        chunks = []
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def write_file(path: str, text: str) -> bool:
    """Replace ``path`` atomically with ``text`` (root:root 0644); False if it already is."""
    try:
        with open(path, encoding="utf-8") as handle:
            if handle.read() == text:
                return False
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".turnout.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fchmod(handle.fileno(), 0o644)
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return True


def set_entry(module, key: str, value: str) -> bool:
    """``set map`` the entry (``add map`` when it is missing); True when it changed."""
    params = module.params
    entries = parse_show_map(runtime(params["socket"], f"show map {params['pool_map']}"))
    if entries.get(key) == value:
        return False
    verb = "set" if key in entries else "add"
    reply = runtime(params["socket"], f"{verb} map {params['pool_map']} {key} {value}").strip()
    if reply:
        module.fail_json(msg=f"turnout_lb: {verb} map {key} {value}: {reply}")
    return True


def op_read(module) -> dict:
    params = module.params
    try:
        show_map = runtime(params["socket"], f"show map {params['pool_map']}")
    except OSError as error:
        if not params["missing_ok"]:
            raise
        return {"running": False, "reason": str(error)}
    entries = parse_show_map(show_map)
    stats = parse_show_stat(runtime(params["socket"], "show stat"))
    releases = {}
    if params["release_map"]:
        releases = parse_show_map(runtime(params["socket"],
                                          f"show map {params['release_map']}"), strict=False)
    try:
        with open(params["pool_map"], encoding="utf-8") as handle:
            on_disk = handle.read()
    except OSError:
        on_disk = ""
    file_pool = None
    for line in on_disk.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "active":
            file_pool = parts[1][3:] if parts[1].startswith("be_") else None
    state, state_error = None, None
    try:
        state = read_state(params["state_path"] or STATE_PATH)
    except StateError as error:
        state_error = str(error)
    try:
        pct = int(entries.get("canary_pct", "0") or 0)
    except ValueError:
        pct = -1
    return {"running": True, "live_pool": active_pool(show_map), "map_file_pool": file_pool,
            "canary": {"backend": entries.get("canary_backend"), "pct": pct},
            "releases": releases, "stats": stats, "fleet_state": state,
            "fleet_state_error": state_error}


def _get(address: str, port: int, timeout: float):
    """A GET of one path on one server over one keep-alive connection: (status, body,
    headers); status 0 and the error as the body when it fails."""
    holder = {"conn": None}

    def get(path: str):
        try:
            if holder["conn"] is None:
                holder["conn"] = http.client.HTTPConnection(address, port, timeout=timeout)
            holder["conn"].request("GET", path)
            answer = holder["conn"].getresponse()
            body = answer.read(65536).decode(errors="replace")
            if answer.getheader("Connection", "").lower() == "close" or not answer.isclosed():
                holder["conn"].close()
                holder["conn"] = None
            return answer.status, body, dict(answer.getheaders())
        except (OSError, http.client.HTTPException) as error:
            if holder["conn"] is not None:
                holder["conn"].close()
            holder["conn"] = None
            return 0, str(error), {}
    return get, holder


def op_quick(module) -> dict:
    """read, then every idle server asked at once for its version and checks, and the lock."""
    params = module.params
    found = op_read(module)
    if not found.get("running"):
        return found
    version_check = params["version_check"] or {}
    targets = idle_hosts(found.get("live_pool"), params["hosts"] or [])

    def one(host):
        get, holder = _get(str(host.get("address")), params["port"],
                           params["request_timeout_s"])
        try:
            return ask(version_check, params["checks"] or [], get)
        finally:
            if holder["conn"] is not None:
                holder["conn"].close()

    answers = {}
    if targets and version_check.get("kind") != "command":
        with ThreadPoolExecutor(max_workers=min(64, len(targets))) as pool:
            answers = dict(zip([h["name"] for h in targets], pool.map(one, targets),
                               strict=True))
    found.update(answers=answers, answered_pool=targets[0]["pool"] if targets else None,
                 version_kind=version_check.get("kind") or "json")
    if params["lock_path"]:
        try:
            with open(params["lock_path"], encoding="utf-8") as handle:
                found["lock"] = parse_lock(handle.read())
        except FileNotFoundError:
            found["lock"] = None
        except ValueError as error:
            found["lock"] = {"error": str(error)}
    return found


def op_wait(module) -> dict:
    params = module.params
    backend = "be_" + params["pool"]
    deadline = time.monotonic() + params["timeout_s"]
    while True:
        stats = parse_show_stat(runtime(params["socket"], "show stat"))
        if servers_up(stats, backend, params["servers"]):
            return {"stats": stats}
        if time.monotonic() > deadline:
            states = {name: fields.get("status") for name, fields in
                      ((stats.get("servers") or {}).get(backend) or {}).items()}
            module.fail_json(msg=f"turnout_lb: not every server of {backend} was UP within "
                             f"{params['timeout_s']}s: {states}", stats=stats)
        time.sleep(1)


def op_set(module) -> dict:
    params = module.params
    pool = params["pool"]
    before = active_pool(runtime(params["socket"], f"show map {params['pool_map']}"),
                         strict=False)
    if module.check_mode:
        return {"changed": before != pool, "live_pool": before}
    # the file first: a reload or restart anywhere after this reads the new pool from disk
    write_file(params["pool_map"], render_map(pool))
    for attempt in range(params["retries"]):
        try:
            reply = runtime(params["socket"],
                            f"set map {params['pool_map']} active be_{pool}").strip()
            now = active_pool(runtime(params["socket"], f"show map {params['pool_map']}"),
                              strict=False)
        except OSError as error:  # a reload moves the socket to the new worker
            reply, now = str(error), None
        if now == pool:
            moved = datetime.now(UTC).isoformat(timespec="milliseconds")
            moved = moved.replace("+00:00", "Z")
            return {"changed": before != pool, "live_pool": now, "attempts": attempt + 1,
                    "moved_at": moved}
        time.sleep(1)
    module.fail_json(msg=f"turnout_lb: the runtime map does not route to be_{pool} after "
                     f"{params['retries']} tries (last reply: {reply or now})")


def op_verify(module) -> dict:
    params = module.params
    url = urllib.parse.urlsplit(params["url"])
    responses = []
    conn = None
    for _ in range(params["requests"]):
        try:
            if conn is None:
                conn = http.client.HTTPConnection(url.hostname, url.port or 80,
                                                  timeout=params["request_timeout_s"])
            conn.request("GET", url.path or "/")
            answer = conn.getresponse()
            body = answer.read(65536).decode(errors="replace")
            version = None
            if answer.status == 200:
                try:
                    version = json.loads(body).get("version")
                except (ValueError, AttributeError):
                    version = None
            responses.append({"status": answer.status, "version": version,
                              "backend": answer.getheader("X-Turnout-Backend"),
                              "headers": dict(answer.getheaders()), "body": body})
            if answer.getheader("Connection", "").lower() == "close" or not answer.isclosed():
                conn.close()  # a body longer than is read: a new connection next
                conn = None
        except (OSError, http.client.HTTPException) as error:
            responses.append({"status": 0, "version": None, "error": str(error)})
            if conn is not None:
                conn.close()
            conn = None
    if conn is not None:
        conn.close()
    return {"responses": responses}


def op_release(module) -> dict:
    params = module.params
    backend, version = "be_" + params["pool"], params["version"]
    path = params["release_map"]
    entries = parse_show_map(runtime(params["socket"], f"show map {path}"), strict=False)
    changed = entries.get(backend) != version
    if module.check_mode:
        return {"changed": changed}
    if changed:
        verb = "set" if backend in entries else "add"
        reply = runtime(params["socket"], f"{verb} map {path} {backend} {version}").strip()
        if reply:
            module.fail_json(msg=f"turnout_lb: {verb} map {backend}: {reply}")
    write_file(path, render_release_map(entries, params["pool"], version))
    return {"changed": changed}


def op_canary(module) -> dict:
    params = module.params
    if module.check_mode:
        return {"changed": True}
    changed = False
    if params["pct"]:
        changed |= set_entry(module, "canary_backend", "be_" + params["pool"])
    changed |= set_entry(module, "canary_pct", str(params["pct"] or 0))
    return {"changed": changed}


def op_watch(module) -> dict:
    params = module.params
    backend = "be_" + params["pool"]
    deadline = time.monotonic() + max(params["seconds"], 1)
    while True:
        stats = parse_show_stat(runtime(params["socket"], "show stat"))
        verdict = canary_check(stats, backend, params["baseline"] or {}, params["max_errors"])
        if not verdict["ok"] or time.monotonic() >= deadline:
            return {"verdict": verdict, "stats": stats}
        time.sleep(1)


def _scur(stats: dict, backend: str, servers: list[str] | None) -> dict[str, int]:
    members = (stats.get("servers") or {}).get(backend) or {}
    return {name: int((fields or {}).get("scur") or 0) for name, fields in members.items()
            if servers is None or name in servers}


def op_idle(module) -> dict:
    """Wait until the listed servers of a pool have no request in flight (scur 0), up to
    timeout_s; never fails (returns what is still running)."""
    params = module.params
    backend = "be_" + params["pool"]
    deadline = time.monotonic() + params["timeout_s"]
    while True:
        busy = {name: n for name, n in _scur(parse_show_stat(runtime(params["socket"],
                                                                      "show stat")),
                                              backend, params["servers"]).items() if n}
        if not busy or time.monotonic() >= deadline:
            return {"busy": busy, "waited_s": round(params["timeout_s"] -
                                                    max(deadline - time.monotonic(), 0), 1)}
        time.sleep(0.5)


def op_server_state(module) -> dict:
    """``set server be_<pool>/<server> state drain|ready`` for each listed server."""
    params = module.params
    backend, state = "be_" + params["pool"], params["server_state"]
    if module.check_mode:
        return {"changed": True}
    for server in params["servers"] or []:
        reply = runtime(params["socket"], f"set server {backend}/{server} state {state}").strip()
        if reply:
            module.fail_json(msg=f"turnout_lb: set server {backend}/{server} state {state}: "
                             f"{reply}")
    return {"changed": True}


def op_state(module) -> dict:
    params = module.params
    path = params["state_path"] or STATE_PATH
    new = params["state"] or {}
    try:
        current = read_state(path)
    except StateError:
        current = None  # an unreadable copy is replaced by the newest one
    if current and int(current.get("serial") or 0) > int(new.get("serial") or 0):
        module.fail_json(msg=f"turnout_lb: {path} holds serial {current.get('serial')}, newer "
                         f"than {new.get('serial')}: another run wrote it; stop and check")
    changed = current != new
    if changed and not module.check_mode:
        write_state(new, path)
    return {"changed": changed}


OPS = {"read": op_read, "wait": op_wait, "set": op_set, "verify": op_verify,
       "release": op_release, "canary": op_canary, "watch": op_watch, "state": op_state,
       "idle": op_idle, "server_state": op_server_state, "quick": op_quick}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "op": {"type": "str", "required": True, "choices": list(OPS)},
            "socket": {"type": "path", "required": True},
            "pool_map": {"type": "path", "required": True},
            "release_map": {"type": "path"},
            "state_path": {"type": "path"},
            "pool": {"type": "str", "choices": ["blue", "green"]},
            "servers": {"type": "list", "elements": "str"},
            "timeout_s": {"type": "int", "default": 30},
            "retries": {"type": "int", "default": 10},
            "url": {"type": "str"},
            "requests": {"type": "int", "default": 10},
            "request_timeout_s": {"type": "float", "default": 5},
            "version": {"type": "str"},
            "pct": {"type": "int"},
            "baseline": {"type": "dict"},
            "seconds": {"type": "int", "default": 30},
            "max_errors": {"type": "int", "default": 0},
            "state": {"type": "dict"},
            "missing_ok": {"type": "bool", "default": False},
            "server_state": {"type": "str", "choices": ["drain", "ready", "maint"]},
            "hosts": {"type": "list", "elements": "dict"},
            "port": {"type": "int"},
            "version_check": {"type": "dict"},
            "checks": {"type": "list", "elements": "dict", "default": []},
            "lock_path": {"type": "path"},
        },
        required_if=[("op", "wait", ("pool",)), ("op", "set", ("pool",)),
                     ("op", "verify", ("url",)), ("op", "release", ("pool", "version",
                                                                      "release_map")),
                     ("op", "canary", ("pool", "pct")), ("op", "watch", ("pool",)),
                     ("op", "state", ("state",)), ("op", "idle", ("pool",)),
                     ("op", "server_state", ("pool", "servers", "server_state")),
                     ("op", "quick", ("hosts", "port", "version_check"))],
        supports_check_mode=True,
    )
    try:
        result = OPS[module.params["op"]](module)
    except (OSError, ValueError) as error:
        module.fail_json(msg=f"turnout_lb {module.params['op']}: {error}")
    result.setdefault("changed", False)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
