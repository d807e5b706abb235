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

from turnout import manifest, plan

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
PLAN_TASKS = REPO / "playbooks" / "phases" / "tasks" / "plan.yml"
SHA1, SHA2, SHA3 = "1" * 64, "2" * 64, "3" * 64
NOW = datetime.now(UTC).replace(microsecond=0)


def rel(version: str, sha: str) -> dict[str, Any]:
    return {"version": version, "sha256": sha, "pool": "x", "run_id": "r"}


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def awaiting_manifest(finished: datetime) -> dict[str, Any]:
    staged = {"version": "2.0", "sha256": SHA2, "run_id": "r2", "staged": True}
    return {
        "schema_version": 1, "env": "side", "live_pool": "blue",
        "pools": {"blue": {"version": "1.0", "sha256": SHA1,
                           "hosts": {"blue1": {"version": "1.0", "sha256": SHA1}}},
                  "green": {"hosts": {"green1": staged}}},
        "history": [{"id": "r2", "action": "deploy", "result": "awaiting_approval",
                     "env": "side", "by": "t", "started_at": stamp(finished),
                     "finished_at": stamp(finished),
                     "from": {"pool": "blue", "version": "1.0", "sha256": SHA1},
                     "to": {"pool": "green", "version": "2.0", "sha256": SHA2}}],
    }


@dataclass
class Case:
    name: str
    action: str
    live: str | None  # what the load balancer's map routes to
    # host -> release.json as read: a dict, {} (no release.json) or "unreadable"
    releases: dict[str, Any]
    inputs: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] | None = None
    pools: dict[str, list[str]] = field(
        default_factory=lambda: {"blue": ["blue1", "blue2"], "green": ["green1"]})
    expect: str = ""  # a word of the refusal, or "" for a plan


DEPLOY = {"version": "2.0", "sha256": SHA2, "canary": [], "release_notes": None}
BLUE_V1 = {"blue1": rel("1.0", SHA1), "blue2": rel("1.0", SHA1), "green1": {}}
GREEN_V2 = {"blue1": rel("1.0", SHA1), "blue2": rel("1.0", SHA1), "green1": rel("2.0", SHA2)}
CASES = [
    Case("empty fleet", "deploy", "blue", {"blue1": {}, "blue2": {}, "green1": {}}, DEPLOY),
    Case("next release", "deploy", "blue", BLUE_V1, DEPLOY),
    Case("already live", "deploy", "green", GREEN_V2, DEPLOY),
    Case("already live, manifest behind", "deploy", "green", GREEN_V2, DEPLOY,
         {"schema_version": 1, "env": "side", "live_pool": "blue"}),
    Case("same version, other sha", "deploy", "green", GREEN_V2, {**DEPLOY, "sha256": SHA3}),
    Case("no active entry in the map", "deploy", None, BLUE_V1, DEPLOY, expect="routes to"),
    Case("live hosts disagree", "deploy", "blue",
         {"blue1": rel("1.0", SHA1), "blue2": rel("1.1", SHA3), "green1": {}}, DEPLOY),
    Case("live pool partly without release.json", "deploy", "blue",
         {"blue1": rel("1.0", SHA1), "blue2": {}, "green1": {}}, DEPLOY),
    Case("unreadable release.json", "deploy", "blue",
         {"blue1": "unreadable", "blue2": rel("1.0", SHA1), "green1": {}}, DEPLOY,
         expect="cannot read release.json on blue1"),
    Case("a pool with no hosts", "deploy", "blue", {"blue1": {}, "blue2": {}}, DEPLOY,
         pools={"blue": ["blue1", "blue2"], "green": []}, expect="pool green has no hosts"),
    Case("canary steps", "deploy", "blue", BLUE_V1, {**DEPLOY, "canary": [10, 50]}),
    Case("rollback to the warm pool", "rollback", "green", GREEN_V2),
    Case("rollback, nothing deployed", "rollback", "blue",
         {"blue1": {}, "blue2": {}, "green1": {}}, expect="nothing has been deployed"),
    Case("rollback, only one deploy", "rollback", "blue", BLUE_V1, expect="no release"),
    Case("rollback, idle hosts disagree", "rollback", "green",
         {"blue1": rel("1.0", SHA1), "blue2": rel("1.1", SHA3), "green1": rel("2.0", SHA2)},
         expect="disagree"),
    Case("rollback, no active entry", "rollback", None, GREEN_V2, expect="routes to"),
    Case("promote the staged release", "promote", "blue",
         {"blue1": rel("1.0", SHA1), "blue2": rel("1.0", SHA1), "green1": rel("2.0", SHA2)},
         {"max_age_s": 3600, "version": None}, awaiting_manifest(NOW - timedelta(seconds=5))),
    Case("promote, stale smoke results", "promote", "blue",
         {"blue1": rel("1.0", SHA1), "blue2": rel("1.0", SHA1), "green1": rel("2.0", SHA2)},
         {"max_age_s": 60, "version": None}, awaiting_manifest(NOW - timedelta(hours=2)),
         expect="old"),
    Case("promote, staged release changed", "promote", "blue",
         {"blue1": rel("1.0", SHA1), "blue2": rel("1.0", SHA1), "green1": rel("2.0", SHA3)},
         {"max_age_s": 3600, "version": None}, awaiting_manifest(NOW), expect="changed"),
    Case("promote, another version asked", "promote", "blue",
         {"blue1": rel("1.0", SHA1), "blue2": rel("1.0", SHA1), "green1": rel("2.0", SHA2)},
         {"max_age_s": 3600, "version": "3.0"}, awaiting_manifest(NOW), expect="turnout_version"),
    Case("promote, nothing awaits", "promote", "blue", BLUE_V1,
         {"max_age_s": 3600, "version": None}, expect="nothing awaits approval"),
]


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
            hosts[pool]["hosts"][name] = {"app_release_current": release}
    inventory = {"all": {"children": {
        "lb": {"hosts": {"lb1": {"pool_switch_live_pool": case.live}}}, **hosts}}}
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
                 **({"turnout_promote_max_age_s": case.inputs["max_age_s"]}
                    if case.action == "promote" else {})},
        "tasks": [*tasks,
                  {"name": "write the plan down", "ansible.builtin.copy": {
                      "dest": str(out), "content": "{{ turnout_plan | to_json }}"}}],
    }]
    # the promote max age comes from the LB's host vars in the playbook
    if case.action == "promote":
        inventory["all"]["children"]["lb"]["hosts"]["lb1"]["turnout_promote_max_age_s"] = \
            case.inputs["max_age_s"]
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
    view = plan.FleetView("side", case.pools, case.live, releases, data)
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
    # promote: the smoke results' age is measured when each side plans
    return {k: re.sub(r"\b\d+s\b", "Ns", v) if isinstance(v, str) else v
            for k, v in planned.items() if k != "age_s"}


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
