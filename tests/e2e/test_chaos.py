"""The randomized operator drill, gating: one seeded sequence on its own lab ('tc', 2 LBs, two
hosts per pool) under load through both LBs, judged after every step (src/turnout/chaos.py).

Seed 1944's first 7 steps meet 7 kinds: a deploy, an HAProxy reload, a deploy with approval,
an HAProxy restart, a SIGKILL of a running command, a lost manifest and reconcile, and a
rollback; then a deploy, a broken release and a rollback --to (the sequence seed 7 found).
Longer runs: `invoke chaos --steps 200 --seed 1,2,3` (docs/chaos.md).
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import invoke, require_lab_support
from turnout import chaos, chaos_runner

pytestmark = pytest.mark.e2e

SEED, STEPS = 1944, 7
# then the sequence seed 7 found: a deploy, a failed deploy that leaves the idle pool holding its
# release, and `rollback --to` the release before the deploy, restaged there: status must be
# clean after it; then the one seed 1 found (200 steps, 2026-12-04): an idle host powered off,
# the manifest corrupted, reconcile (it failed on the unreachable host and left the corrupt
# manifest, so every later command was refused), the host back; then a host powered off and
# left off: it comes back by itself after chaos.POWER_OFF_STEPS steps and the deploy it meets
# goes live on the whole fleet
THEN = ("deploy", "deploy_broken", "rollback_to", "host_power_cycle", "manifest_corrupt",
        "host_power_cycle", "host_power_cycle") + ("haproxy_reload",) * chaos.POWER_OFF_STEPS \
    + ("deploy",)


def test_bad_chaos_options_are_refused_before_any_lab_boots():
    for args, says in ((["--weights", "explode=1"], "unknown step 'explode'"),
                       (["--steps", "0"], "--steps"), (["--seed", "x"], "--seed")):
        proc = invoke("chaos", *args, env={"TURNOUT_CHAOS_LAB": "zz"})
        assert proc.returncode == 2, proc.stdout + proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and says in lines[0] and "Traceback" not in proc.stderr, lines
    assert not os.path.exists("/var/lib/turnout/labs/zz")


def test_a_seeded_sequence_never_serves_an_unproven_release(tmp_path):
    require_lab_support()
    (run,) = chaos_runner.on_lab(
        os.environ.get("TURNOUT_TEST_CHAOS_LAB", "tc"),
        os.environ.get("TURNOUT_TEST_CHAOS_SUBNET", "10.231.22.0/24"), "labtc", [SEED], STEPS,
        None, out_dir=tmp_path, keep=os.environ.get("TURNOUT_KEEP_LAB") == "1", then=THEN)
    print("\n".join(f"CHAOS {line}" for line in (tmp_path.glob("chaos-*.md").__next__()
                                                   .read_text().splitlines())))
    drawn = [s.describe() for s in chaos.draw(SEED, STEPS)]
    assert run["sequence"][:STEPS] == drawn  # reproducible
    assert run["steps"] == STEPS + len(THEN), run
    assert run["violations"] == [], run["first_violation"]
    assert run["failed_outside_haproxy_restarts"] == 0, run["failed_requests_by_cause"]
    assert run["requests"] > 1000  # the load ran through every step
    # the steps really ran their commands: the deploy, the reconcile and the broken deploy
    kinds = {r["step"]["kind"]: r for r in run["results"]}
    assert kinds["deploy"]["commands"][-1]["exit"] == 0
    assert kinds["manifest_lost"]["commands"][-1]["argv"][0] == "reconcile"
    assert kinds["manifest_lost"]["commands"][-1]["exit"] == 0
    assert kinds["deploy_broken"]["commands"][-1]["exit"] == 1
    assert any(r["requests"] for r in run["results"] if r["step"]["kind"] == "haproxy_restart")
    scripted_deploy = run["results"][STEPS]  # kinds["deploy"] is the tail's last one
    assert scripted_deploy["step"]["kind"] == "deploy", scripted_deploy
    assert scripted_deploy["commands"][-1]["exit"] == 0, scripted_deploy
    restaged = run["results"][STEPS + 2]
    assert restaged["step"]["kind"] == "rollback_to" and restaged["commands"][-1]["exit"] == 0
    assert restaged["status"] == 0, restaged  # the manifest records the restaged hosts
    # a corrupt manifest with an idle host down: the deploy is refused (2); reconcile writes the
    # manifest without that host and says so (3, drift); status names it (3), not a bad file (2)
    off, corrupt, on = run["results"][STEPS + 3:STEPS + 6]
    assert off["commands"][0]["fault"].startswith("power off"), off
    assert on["commands"][0]["fault"].startswith("power on"), on
    ran = [c for c in corrupt["commands"] if "argv" in c]
    assert [(c["argv"][0], c["exit"]) for c in ran] == [("deploy", 2), ("reconcile", 3)], corrupt
    assert corrupt["status"] == 3, corrupt
    # a host left off comes back by itself before the step after POWER_OFF_STEPS steps, and
    # that step's deploy goes live with every host answering: status is clean again
    left_off, *waited, back = run["results"][STEPS + 6:]
    assert left_off["commands"][0]["fault"].startswith("power off"), left_off
    assert len(waited) == chaos.POWER_OFF_STEPS
    assert all("powered off" in r["state_before"]["hosts"].values() for r in waited), waited
    assert back["commands"][0]["fault"].startswith("power on"), back
    assert "powered off" not in back["state_before"]["hosts"].values(), back
    assert back["commands"][-1]["argv"][0] == "deploy", back
    assert back["commands"][-1]["exit"] == 0 and back["status"] == 0, back
