"""The plan is written once: every fleet state, planned by the playbooks (the ``turnout_plan``
task of playbooks/phases/tasks/plan.yml, run by ansible-playbook on facts the discover phase
would set) and by invoke (turnout.plan.plan_for on what turnout.facts reads over SSH), gives
the same answer, refusals included.

No host is contacted: the app hosts' and the load balancer's facts are inventory variables,
and only the controller runs the task.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from turnout import facts, fleetstate, manifest, plan, traffic

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
PLAN_TASKS = REPO / "playbooks" / "phases" / "tasks" / "plan.yml"
SHA1, SHA2, SHA3 = "1" * 64, "2" * 64, "3" * 64
NOW = datetime.now(UTC).replace(microsecond=0)


def rel(version: str, sha: str) -> dict[str, Any]:
    return {"version": version, "sha256": sha, "pool": "x", "run_id": "r"}


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def state_after(*steps: tuple[str, str, str], awaiting_at: datetime | None = None) -> dict:
    """A release state: each step (version, sha, pool) deployed and verified live in turn;
    with ``awaiting_at`` the last one only staged and waiting for approval since then."""
    state: dict[str, Any] | None = None
    for number, (version, sha, pool) in enumerate(steps):
        run = f"r{number + 1}"
        last = number == len(steps) - 1
        at = stamp(awaiting_at) if last and awaiting_at else "2026-11-22T10:00:00Z"
        state = fleetstate.transition(state, {"op": "stage", "pool": pool, "version": version,
                                              "sha256": sha, "run_id": run, "at": at})
        if last and awaiting_at:
            return fleetstate.transition(state, {"op": "awaiting", "pool": pool, "run_id": run,
                                                 "at": at})
        state = fleetstate.transition(state, {"op": "begin", "to": pool, "action": "deploy",
                                              "run_id": run, "at": at})
        state = fleetstate.transition(state, {"op": "commit", "run_id": run, "at": at})
    return state or {}


def pending_after(state: dict, to: str, action: str = "deploy") -> dict:
    return fleetstate.transition(state, {"op": "begin", "to": to, "action": action,
                                         "run_id": "r9", "at": "2026-11-22T11:00:00Z"})


@dataclass
class Case:
    name: str
    action: str
    routes: dict[str, str | None]  # what each load balancer's map routes to
    # host -> release.json as read: a dict, {} (no release.json) or "unreadable"
    releases: dict[str, Any]
    inputs: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] | None = None  # the release state every LB holds
    up: dict[str, list[str]] = field(default_factory=dict)  # pool -> servers UP
    manifest: dict[str, Any] | None = None
    pools: dict[str, list[str]] = field(
        default_factory=lambda: {"blue": ["blue1", "blue2"], "green": ["green1"]})
    expect: str = ""  # a word of the refusal, or "" for a plan


def both(pool: str | None) -> dict[str, str | None]:
    return {"lb1": pool, "lb2": pool}


DEPLOY = {"version": "2.0", "sha256": SHA2, "canary": [], "release_notes": None,
          "artifact": "/dist/app-2.0.tar.gz"}
BLUE_V1 = {"blue1": rel("1.0", SHA1), "blue2": rel("1.0", SHA1), "green1": {}}
GREEN_V2 = {"blue1": rel("1.0", SHA1), "blue2": rel("1.0", SHA1), "green1": rel("2.0", SHA2)}
S_BLUE = state_after(("1.0", SHA1, "blue"))
S_GREEN = state_after(("1.0", SHA1, "blue"), ("2.0", SHA2, "green"))
UP_BLUE = {"blue": ["blue1", "blue2"]}
STAGED_GREEN = fleetstate.transition(S_BLUE, {"op": "stage", "pool": "green", "version": "2.0",
                                              "sha256": SHA2, "run_id": "r9", "at": "t"})
# A day: the cases stamp their smoke results at collection time (NOW), which can be an hour
# before this module runs in the whole suite.
PROMOTE = {"max_age_s": 86400, "version": None}
CASES = [
    Case("empty fleet", "deploy", both("blue"), {"blue1": {}, "blue2": {}, "green1": {}},
         DEPLOY),
    Case("next release", "deploy", both("blue"), BLUE_V1, DEPLOY, S_BLUE, UP_BLUE),
    Case("already live", "deploy", both("green"), GREEN_V2, DEPLOY, S_GREEN),
    Case("already live, manifest behind", "deploy", both("green"), GREEN_V2, DEPLOY, S_GREEN,
         manifest={"schema_version": 1, "env": "side", "live_pool": "blue"}),
    Case("same version, other sha", "deploy", both("green"), GREEN_V2,
         {**DEPLOY, "sha256": SHA3}, S_GREEN),
    Case("no active entry in the map", "deploy", {"lb1": "blue", "lb2": None}, BLUE_V1, DEPLOY,
         S_BLUE, expect="routes to None"),
    Case("load balancers disagree", "deploy", {"lb1": "blue", "lb2": "green"}, GREEN_V2,
         DEPLOY, S_GREEN, expect="disagree"),
    Case("traffic moved by hand", "deploy", both("blue"), GREEN_V2, DEPLOY, S_GREEN,
         expect="moved traffic by hand"),
    Case("a killed flip, finished by the same release", "deploy",
         {"lb1": "green", "lb2": "blue"}, GREEN_V2, DEPLOY,
         pending_after(STAGED_GREEN, "green")),
    Case("a killed flip, another release", "deploy", {"lb1": "green", "lb2": "blue"},
         GREEN_V2, {**DEPLOY, "version": "3.0", "sha256": SHA3},
         pending_after(STAGED_GREEN, "green"), expect="unfinished"),
    Case("serving pool without release.json", "deploy", both("blue"),
         {"blue1": {}, "blue2": {}, "green1": {}}, DEPLOY, up=UP_BLUE),
    Case("live hosts disagree", "deploy", both("blue"),
         {"blue1": rel("1.0", SHA1), "blue2": rel("1.1", SHA3), "green1": {}}, DEPLOY,
         up=UP_BLUE),
    Case("unreadable release.json", "deploy", both("blue"),
         {"blue1": "unreadable", "blue2": rel("1.0", SHA1), "green1": {}}, DEPLOY, S_BLUE,
         expect="cannot read release.json on blue1"),
    Case("a pool with no hosts", "deploy", both("blue"), {"blue1": {}, "blue2": {}}, DEPLOY,
         pools={"blue": ["blue1", "blue2"], "green": []}, expect="pool green has no hosts"),
    Case("canary steps", "deploy", both("blue"), BLUE_V1, {**DEPLOY, "canary": [10, 50]},
         S_BLUE, UP_BLUE),
    Case("rollback to the warm pool", "rollback", both("green"), GREEN_V2, {}, S_GREEN),
    Case("rollback, nothing deployed", "rollback", both("blue"),
         {"blue1": {}, "blue2": {}, "green1": {}}, expect="no release has gone live"),
    Case("rollback, only one deploy", "rollback", both("blue"), BLUE_V1, {}, S_BLUE,
         expect="no verified release went live before"),
    Case("rollback, idle hosts changed", "rollback", both("green"),
         {"blue1": rel("1.0", SHA1), "blue2": rel("1.1", SHA3), "green1": rel("2.0", SHA2)},
         {}, S_GREEN, expect="nothing to roll back to on the idle pool"),
    Case("rollback after an unapproved stage", "rollback", both("green"),
         {"blue1": rel("3.0", SHA3), "blue2": rel("3.0", SHA3), "green1": rel("2.0", SHA2)},
         {}, state_after(("1.0", SHA1, "blue"), ("2.0", SHA2, "green"), ("3.0", SHA3, "blue"),
                         awaiting_at=NOW), expect="awaiting approval, never live"),
    Case("rollback --to a release that went live", "rollback", both("green"),
         {"blue1": rel("3.0", SHA3), "blue2": rel("3.0", SHA3), "green1": rel("2.0", SHA2)},
         {"to_version": "1.0", "artifact": "/dist/app-1.0.tar.gz"},
         state_after(("1.0", SHA1, "blue"), ("2.0", SHA2, "green"), ("3.0", SHA3, "blue"),
                     awaiting_at=NOW)),
    Case("rollback, an interrupted rollback", "rollback", {"lb1": "blue", "lb2": "green"},
         GREEN_V2, {}, pending_after(S_GREEN, "blue", "rollback")),
    Case("promote the staged release", "promote", both("blue"),
         {"blue1": rel("1.0", SHA1), "blue2": rel("1.0", SHA1), "green1": rel("2.0", SHA2)},
         PROMOTE, state_after(("1.0", SHA1, "blue"), ("2.0", SHA2, "green"),
                              awaiting_at=NOW - timedelta(seconds=5))),
    Case("promote, stale smoke results", "promote", both("blue"),
         {"blue1": rel("1.0", SHA1), "blue2": rel("1.0", SHA1), "green1": rel("2.0", SHA2)},
         {"max_age_s": 60, "version": None},
         state_after(("1.0", SHA1, "blue"), ("2.0", SHA2, "green"),
                     awaiting_at=NOW - timedelta(hours=2)), expect="old"),
    Case("promote, staged release changed", "promote", both("blue"),
         {"blue1": rel("1.0", SHA1), "blue2": rel("1.0", SHA1), "green1": rel("2.0", SHA3)},
         PROMOTE, state_after(("1.0", SHA1, "blue"), ("2.0", SHA2, "green"), awaiting_at=NOW),
         expect="changed"),
    Case("promote, another version asked", "promote", both("blue"),
         {"blue1": rel("1.0", SHA1), "blue2": rel("1.0", SHA1), "green1": rel("2.0", SHA2)},
         {"max_age_s": 86400, "version": "3.0"},
         state_after(("1.0", SHA1, "blue"), ("2.0", SHA2, "green"), awaiting_at=NOW),
         expect="turnout_version"),
    Case("promote, nothing awaits", "promote", both("blue"), BLUE_V1, PROMOTE, S_BLUE,
         expect="nothing awaits approval"),
]


def lb_read(case: Case, routed: str | None) -> dict[str, Any]:
    """What turnout_lb's read returns on one LB of the case (and turnout.facts.LbFacts)."""
    servers = {f"be_{pool}": {host: {"status": "UP" if host in case.up.get(pool, []) else
                                     "DOWN"} for host in hosts}
               for pool, hosts in case.pools.items()}
    return {"live_pool": routed, "map_file_pool": routed, "canary": {"backend": None, "pct": 0},
            "releases": {}, "stats": {"backends": {}, "servers": servers},
            "fleet_state": case.state, "fleet_state_error": None}


def _plan_tasks() -> list[dict[str, Any]]:
    """The playbook's own planning task and the one that keeps its result, as the plan phase
    runs them."""
    tasks = yaml.safe_load(PLAN_TASKS.read_text())
    index = [i for i, t in enumerate(tasks) if "turnout_plan" in t]
    assert len(index) == 1, "plan.yml must plan in exactly one turnout_plan task"
    keep = tasks[index[0] + 1]
    assert "turnout_plan" in keep.get("ansible.builtin.set_fact", {}), keep
    return [{k: v for k, v in t.items() if k != "when"} for t in tasks[index[0]:index[0] + 2]]


def write_manifest(case: Case, env_dir: Path) -> Path:
    """The environment's manifest, in a directory named like the environment."""
    env_dir.mkdir(parents=True)
    manifest = env_dir / "manifest.yml"
    if case.manifest is not None:
        manifest.write_text(yaml.safe_dump(case.manifest))
    return manifest


def playbook_side(case: Case, tmp: Path) -> dict[str, Any]:
    manifest = write_manifest(case, tmp / "side")
    hosts: dict[str, Any] = {}
    for pool, names in case.pools.items():
        hosts[pool] = {"hosts": {}}
        for name in names:
            release = case.releases.get(name, {})
            # an unreadable release.json fails the discover phase, which records it as a
            # preflight failure before planning; the plan itself never sees it
            read = {"release": {k: v for k, v in release.items() if k != "service"},
                    "active": release.get("service"), "current": "", "base_ready": True}
            hosts[pool]["hosts"][name] = {"app_release_read_result": read}
    inventory = {"all": {"children": {
        "lb": {"hosts": {name: {"pool_switch_lb": lb_read(case, routed)}
                         for name, routed in case.routes.items()}}, **hosts}}}
    (tmp / "hosts.yml").write_text(yaml.safe_dump(inventory))
    tasks = _plan_tasks()
    out = tmp / "plan.json"
    play = [{
        "name": "plan as the playbook does", "hosts": "localhost", "gather_facts": False,
        "vars": {"turnout_run": {"env": "side", "action": case.action,
                                 "manifest_path": str(manifest)},
                 **({"turnout_deploy": case.inputs} if case.action == "deploy" else {}),
                 **({"turnout_version": case.inputs["version"]}
                    if case.action == "promote" and case.inputs.get("version") else {}),
                 **({"turnout_rollback_to": case.inputs["to_version"]}
                    if case.inputs.get("to_version") else {}),
                 **({"turnout_artifact": case.inputs["artifact"]}
                    if case.action == "rollback" and case.inputs.get("artifact") else {})},
        "tasks": [*tasks,
                  {"name": "write the plan down", "ansible.builtin.copy": {
                      "dest": str(out), "content": "{{ turnout_plan | to_json }}"}}],
    }]
    # the promote max age comes from the LB's host vars in the playbook
    if case.action == "promote":
        for lb in inventory["all"]["children"]["lb"]["hosts"].values():
            lb["turnout_promote_max_age_s"] = case.inputs["max_age_s"]
        (tmp / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(tmp / "hosts.yml"),
                           str(tmp / "play.yml")], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text())


def invoke_side(case: Case, tmp: Path) -> dict[str, Any]:
    """What invoke plans from turnout.facts' reading of the same fleet (commands._view)."""
    data = manifest.load(write_manifest(case, tmp / "side"))
    releases = {}
    for name, release in case.releases.items():
        releases[name] = ({"error": "release.json is not valid JSON", "service": "active"}
                          if release == "unreadable" else {**release, "service": "active"})
    lbs = {}
    for name, routed in case.routes.items():
        read = lb_read(case, routed)
        lb = facts.LbFacts(host=name, live_pool=read["live_pool"],
                           map_file_pool=read["map_file_pool"], canary=read["canary"],
                           stats=read["stats"], fleet_state=read["fleet_state"])
        lbs[name] = traffic.lb_view(name, lb.as_read())
    view = plan.FleetView("side", case.pools, lbs, releases, data)
    inputs = dict(case.inputs)
    return plan.plan_for(case.action, view, inputs, datetime.now(UTC))


@pytest.fixture(scope="module")
def playbook_plans(tmp_path_factory) -> dict[str, dict[str, Any]]:
    base = tmp_path_factory.mktemp("sides")
    runnable = [c for c in CASES if "unreadable" not in c.releases.values()]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = pool.map(lambda c: playbook_side(c, base / c.name.replace(" ", "-")
                                                   .replace(",", "")), runnable)
        return dict(zip([c.name for c in runnable], results, strict=True))


def _comparable(planned: dict[str, Any]) -> dict[str, Any]:
    # promote: the smoke results' age is measured when each side plans; a seeded release
    # state carries the time it was seeded
    return {k: re.sub(r"\b\d+s\b", "Ns", v) if isinstance(v, str) else v
            for k, v in planned.items() if k not in ("age_s", "fleet_state")}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_both_sides_plan_the_same(case: Case, playbook_plans, tmp_path) -> None:
    ours = invoke_side(case, tmp_path)
    if case.expect:
        assert case.expect in ours["refused"], ours
    else:
        assert ours["refused"] == "", ours["refused"]
    if case.name not in playbook_plans:  # the discover phase refuses it before planning
        assert ours["refused"]
        return
    assert _comparable(playbook_plans[case.name]) == _comparable(ours)


def test_the_table_covers_every_action_and_refusals() -> None:
    assert {c.action for c in CASES} == set(plan.PLANNERS)
    assert sum(bool(c.expect) for c in CASES) >= 8
