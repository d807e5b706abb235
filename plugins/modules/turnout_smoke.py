#!/usr/bin/python
"""Module turnout_smoke: smoke-test every host of a pool at once, from the load balancer.

A thin adapter: HTTP requests in parallel threads, one per host; the judgement of each answer
is turnout.smoke (shipped as module_utils/turnout_smoke).
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: turnout_smoke
short_description: Smoke-test the hosts of a pool from the load balancer, all at once
description:
  - For every host, in parallel - poll the health check until it answers its status (deadline),
    check the version the app reports (JSON key, response header or regex on the body; a
    command-kind check is made on the host itself and passed in as C(reported)), make the
    team's extra checks, and time C(samples) requests to the version path against a budget.
  - Returns C(results), per host {result, latency_ms, checks}; never fails the task (the
    playbook judges the pool).
options:
  hosts:
    description: "[{name, address}] to test."
    type: list
    elements: dict
    required: true
  port: {description: The app's port., type: int, required: true}
  health: {description: "{path, status, timeout_s}.", type: dict, required: true}
  deadline_s: {description: How long the health check may take to pass., type: int, default: 20}
  version: {description: "The version check {kind, path, key, header, pattern}.", type: dict,
            required: true}
  expected: {description: The version every host must report., type: str, required: true}
  reported: {description: "{host: version} from a command-kind check on the hosts.", type: dict,
             default: {}}
  checks: {description: "[{name, path, status, contains}].", type: list, elements: dict,
           default: []}
  samples: {description: Timed requests for the latency check., type: int, default: 5}
  budget_ms: {description: The worst latency allowed., type: int, default: 500}
  timeout_s: {description: Timeout of each request., type: float, default: 5}
author:
  - turnout
"""

EXAMPLES = r"""
- name: smoke_test | smoke-test the pool from the load balancer
  turnout_smoke:
    hosts: [{name: green1, address: 10.0.0.31}]
    port: 8080
    health: {path: /healthz, status: 200, timeout_s: 5}
    version: {kind: json, path: /version, key: version}
    expected: 1.4.2
  delegate_to: lb1
"""

RETURN = r"""
results: {description: "{host: {result, latency_ms, checks}}.", type: dict, returned: always}
"""

import http.client  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.turnout_smoke import (  # noqa: E402
    extra_check,
    reported_version,
    result,
    version_check,
)


# Bytes of a response body that are checked (version regex or JSON, contains).
BODY_LIMIT = 1 << 16

class Client:
    """One keep-alive HTTP connection to one host, reopened after an error."""

    def __init__(self, address: str, port: int, timeout: float) -> None:
        self.address, self.port, self.timeout = address, port, timeout
        self.conn: http.client.HTTPConnection | None = None

    def get(self, path: str) -> tuple[int, str, dict[str, str], float]:
        started = time.monotonic()
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.address, self.port,
                                                       timeout=self.timeout)
            self.conn.request("GET", path)
            answer = self.conn.getresponse()
            body = answer.read(BODY_LIMIT).decode(errors="replace")  # the check after the
            headers = {k: v for k, v in answer.getheaders()}  # flip reads as much (turnout_lb)
            if answer.getheader("Connection", "").lower() == "close" or not answer.isclosed():
                self.close()  # a longer body is not read to its end: a new connection next
            return answer.status, body, headers, time.monotonic() - started
        except (OSError, http.client.HTTPException) as error:
            self.close()
            return 0, str(error), {}, time.monotonic() - started

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None


def smoke_one(p, host) -> dict:
    client = Client(host["address"], p["port"], p["timeout_s"])
    health = p["health"]
    want = int(health.get("status", 200))
    deadline = time.monotonic() + p["deadline_s"]
    attempts, status, body = 0, 0, ""
    while True:
        attempts += 1
        status, body, _, _ = client.get(health.get("path", "/healthz"))
        if status == want or time.monotonic() >= deadline:
            break
        time.sleep(1)
    health_check = {"name": "health", "ok": status == want,
                    "detail": (f"{health.get('path')} answered {want} after {attempts} attempt(s)"
                               if status == want else
                               f"{health.get('path')} did not answer {want} within "
                               f"{p['deadline_s']}s (last: {status or body[:120]})")}
    version = p["version"]
    if version.get("kind") == "command":
        reported = (p["reported"] or {}).get(host["name"])
    else:
        v_status, v_body, v_headers, _ = client.get(version.get("path", "/version"))
        reported = reported_version(version, v_status, v_body, v_headers)
    extras = []
    for check in p["checks"]:
        c_status, c_body, _, _ = client.get(check.get("path", "/"))
        extras.append(extra_check(check, c_status, c_body))
    latencies, answered = [], 0
    for _ in range(p["samples"]):
        s_status, _, _, seconds = client.get(version.get("path", "/version")
                                             if version.get("kind") != "command"
                                             else health.get("path", "/healthz"))
        latencies.append(seconds)
        answered += s_status == 200
    client.close()
    return result(health_check, version_check(p["expected"], reported), extras, latencies,
                  answered, p["samples"], p["budget_ms"])


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "hosts": {"type": "list", "elements": "dict", "required": True},
            "port": {"type": "int", "required": True},
            "health": {"type": "dict", "required": True},
            "deadline_s": {"type": "int", "default": 20},
            "version": {"type": "dict", "required": True},
            "expected": {"type": "str", "required": True},
            "reported": {"type": "dict", "default": {}},
            "checks": {"type": "list", "elements": "dict", "default": []},
            "samples": {"type": "int", "default": 5},
            "budget_ms": {"type": "int", "default": 500},
            "timeout_s": {"type": "float", "default": 5},
        },
        supports_check_mode=True,
    )
    p = module.params
    with ThreadPoolExecutor(max_workers=min(64, max(len(p["hosts"]), 1))) as pool:
        found = dict(zip([h["name"] for h in p["hosts"]],
                         pool.map(lambda h: smoke_one(p, h), p["hosts"]), strict=True))
    module.exit_json(changed=False, results=found)


if __name__ == "__main__":
    main()
