"""Read-path timing: turnout.facts over OpenSSH vs the same reads with Fabric (paramiko).

The decision it informed (docs/architecture.md, "Dependencies"): whether Fabric may do the job
the project's design card named it for, the read-only parallel path of status, report and the
plan. Run as root against a lab:

    .venv/bin/python bench/tools/readpath.py --lab b --runs 5

Cold = no SSH connection open before the read (ControlPersist masters closed); warm = the
second read in a row (OpenSSH reuses its masters; Fabric reuses nothing across processes, so
its warm figure is a second read by the same process). Fabric must be installed in the
environment running this (pip install 'fabric>=3.2,<3.3'); turnout itself does not depend on it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

from turnout import facts
from turnout.inventory import control_dir, load_environment
from turnout.lab.config import LabConfig

CONTROL_DIR = Path(control_dir())  # the one Ansible and turnout.facts share
SOCKET, POOL_MAP = "/run/haproxy/admin.sock", "/etc/haproxy/pool.map"


def close_masters() -> None:
    for sock in CONTROL_DIR.glob("*"):
        subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "x"],
                       capture_output=True, check=False)
        sock.unlink(missing_ok=True)


def openssh_read(env) -> float:
    started = time.monotonic()
    fleet = facts.gather(env)
    assert fleet.lb.error is None and all(r and "error" not in r for r in fleet.hosts.values())
    return time.monotonic() - started


def fabric_read(env, lab: LabConfig, group=None) -> tuple[float, object]:
    import paramiko
    from fabric import Connection, ThreadingGroup

    started = time.monotonic()
    if group is None:
        conns = []
        for host in [*env.lb, *env.app_hosts()]:
            conn = Connection(host.address, user="root",
                              connect_kwargs={"key_filename": str(lab.key_file),
                                              "look_for_keys": False, "allow_agent": False})
            conn.client.load_host_keys(str(lab.known_hosts))
            conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
            conns.append(conn)
        group = ThreadingGroup.from_connections(conns)
    lb, *apps = list(group)
    lb.run(f"echo 'show map {POOL_MAP}' | socat stdio {SOCKET}; echo 'show stat' | "
           f"socat stdio {SOCKET}", hide=True)
    results = ThreadingGroup.from_connections(apps).run(
        "cat /srv/app/release.json 2>/dev/null || echo '{}'; systemctl is-active app.service "
        "|| true", hide=True)
    assert all(r.ok for r in results.values())
    return time.monotonic() - started, group


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", required=True, help="lab name (its inventory in inventories/)")
    parser.add_argument("--inventories", default="inventories")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    env = load_environment(args.lab, Path(args.inventories).resolve())
    state = json.loads((Path("/var/lib/turnout/labs") / args.lab / "state.json").read_text())
    lab = LabConfig(args.lab, state["subnet"], state["app_hosts"])
    samples: dict[str, list[float]] = {k: [] for k in ("openssh_cold", "openssh_warm",
                                                       "fabric_cold", "fabric_warm")}
    for _ in range(args.runs):
        close_masters()
        samples["openssh_cold"].append(openssh_read(env))
        samples["openssh_warm"].append(openssh_read(env))
        cold, group = fabric_read(env, lab)
        samples["fabric_cold"].append(cold)
        samples["fabric_warm"].append(fabric_read(env, lab, group)[0])
        group.close()
    hosts = 1 + len(env.app_hosts())
    print(json.dumps({"hosts": hosts, "runs": args.runs,
                      **{k: round(statistics.median(v), 3) for k, v in samples.items()}},
                     indent=2))


if __name__ == "__main__":
    main()
