"""Helpers shared by the scenarios' testinfra tests: the lab's addresses, HTTP from the
controller, the HAProxy Runtime API, and polling with a deadline (never a bare sleep)."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

ADMIN_SOCKET = "/run/haproxy/admin.sock"


def ephemeral_dir() -> Path:
    """The scenario's ephemeral directory (artifacts and recorded results live there)."""
    return Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])


def address(host) -> str:
    """The address Ansible (and users) reach a lab host on."""
    return host.ansible.get_variables()["ansible_host"]


def http_get(url: str, timeout: float = 5.0) -> tuple[int, dict[str, str], str]:
    """GET url from the controller: (status, headers with lowercase names, body); an HTTP error
    status is a result too."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # lab addresses only
            status, headers, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        status, headers, body = exc.code, exc.headers, exc.read()
    return status, {name.lower(): value for name, value in headers.items()}, body.decode()


def get_json(url: str) -> dict:
    """GET url and decode its JSON body; fail unless the status is 200."""
    status, _, body = http_get(url)
    assert status == 200, f"GET {url} -> {status}: {body[:200]}"
    return json.loads(body)


def poll[T](check: Callable[[], T], deadline_s: float = 30.0, interval_s: float = 0.5) -> T:
    """Call check() until it returns without AssertionError/OSError or the deadline passes."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            return check()
        except (AssertionError, OSError) as exc:
            if time.monotonic() >= end:
                raise AssertionError(f"still failing after {deadline_s:.0f}s: {exc}") from exc
        time.sleep(interval_s)


def runtime_api(host, command: str) -> str:
    """Send one command to HAProxy's Runtime API on host (root over SSH) and return the reply."""
    result = host.run("echo %s | socat stdio " + ADMIN_SOCKET, command)
    assert result.rc == 0, f"runtime API '{command}' failed: {result.stderr}"
    return result.stdout


def server_states(host) -> dict[str, str]:
    """'backend/server' -> status (UP, DOWN, MAINT, ...) from `show stat`."""
    lines = runtime_api(host, "show stat").splitlines()
    header = lines[0].lstrip("# ").split(",")
    states = {}
    for line in lines[1:]:
        if not line.strip():
            continue
        row = dict(zip(header, line.split(","), strict=False))
        if row["svname"] not in ("FRONTEND", "BACKEND"):
            states[f"{row['pxname']}/{row['svname']}"] = row["status"]
    return states
