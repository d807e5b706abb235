"""turnout.fleetstate: the release state on the load balancers, its transitions and the
rollback target it implies."""

from __future__ import annotations

import json

import pytest

from turnout import fleetstate as fs

SHA = {v: c * 64 for v, c in (("0.9", "9"), ("1.0", "1"), ("2.0", "2"), ("3.0", "3"))}


def deploy(state, version, pool, run, *, approve=False, fail=None):
    """The writes of one deploy: stage, then flip (or its failure)."""
    state = fs.transition(state, {"op": "stage", "pool": pool, "version": version,
                                  "sha256": SHA[version], "run_id": run, "at": f"t-{run}-s"})
    if fail == "smoke":
        return fs.transition(state, {"op": "failed", "pool": pool, "run_id": run,
                                     "at": f"t-{run}-f"})
    if approve:
        return fs.transition(state, {"op": "awaiting", "pool": pool, "run_id": run,
                                     "at": f"t-{run}-a"})
    return flip(state, pool, run, "deploy", fail=fail)


def flip(state, pool, run, action, fail=None):
    state = fs.transition(state, {"op": "begin", "to": pool, "action": action, "run_id": run,
                                  "at": f"t-{run}-b"})
    if fail:
        return fs.transition(state, {"op": "abort", "run_id": run, "status": fail,
                                     "at": f"t-{run}-x"})
    return fs.transition(state, {"op": "commit", "run_id": run, "at": f"t-{run}-c"})


def test_a_deploy_stages_then_goes_live_and_the_old_pool_becomes_previous():
    state = deploy(fs.empty("prod"), "1.0", "blue", "r1")
    state = deploy(state, "2.0", "green", "r2")
    assert state["live"] == "green" and state["pending"] is None
    assert state["pools"]["green"]["status"] == "live"
    assert state["pools"]["blue"]["status"] == "previous"
    assert [(e["version"], e["pool"]) for e in state["history"]] == [("1.0", "blue"),
                                                                       ("2.0", "green")]
    assert state["serial"] == 6  # stage, begin, commit per deploy
    assert fs.rollback_target(state)["version"] == "1.0"


def test_a_rollback_marks_what_it_left_and_is_not_undone_by_a_second_rollback():
    state = deploy(deploy(fs.empty(), "1.0", "blue", "r1"), "2.0", "green", "r2")
    state = flip(state, "blue", "r3", "rollback")
    assert state["live"] == "blue" and state["pools"]["green"]["status"] == "rolled_back"
    assert fs.rollback_target(state) is None  # never back to the release it escaped from


def test_rollback_target_skips_rolled_back_releases_to_the_one_before():
    state = deploy(fs.empty(), "0.9", "blue", "r0")
    state = deploy(state, "1.0", "green", "r1")
    state = deploy(state, "2.0", "blue", "r2")
    state = flip(state, "green", "r3", "rollback")  # 2.0 rolled back, 1.0 live again
    assert fs.rollback_target(state)["version"] == "0.9"  # no longer on a warm pool


@pytest.mark.parametrize("how", ["approval", "smoke", "flipped_back", "canary_aborted"])
def test_a_release_that_never_went_live_is_never_a_rollback_target(how):
    state = deploy(deploy(fs.empty(), "1.0", "blue", "r1"), "2.0", "green", "r2")
    state = deploy(state, "3.0", "blue", "r3", approve=how == "approval",
                   fail=None if how == "approval" else how)
    status = state["pools"]["blue"]["status"]
    assert status in fs.NEVER_LIVE and status != "live"
    assert state["live"] == "green"
    assert fs.rollback_target(state)["version"] == "1.0"  # known, but its pool was restaged
    assert "3.0" not in {e["version"] for e in fs.once_live(state)}


def test_an_interrupted_rollback_converges_on_its_own_target():
    state = deploy(deploy(fs.empty(), "1.0", "blue", "r1"), "2.0", "green", "r2")
    state = fs.transition(state, {"op": "begin", "to": "blue", "action": "rollback",
                                  "run_id": "r3", "at": "t"})
    target = fs.rollback_target(state)
    assert (target["pool"], target["version"], target["run_id"]) == ("blue", "1.0", "r3")


def test_stage_refuses_the_live_pool():
    state = deploy(fs.empty(), "1.0", "blue", "r1")
    with pytest.raises(fs.StateError, match="never stages the live pool"):
        fs.apply(state, {"op": "stage", "pool": "blue", "version": "2.0", "sha256": SHA["2.0"],
                         "run_id": "r2", "at": "t"})


def test_marks_of_another_run_do_not_touch_a_pool():
    state = deploy(fs.empty(), "1.0", "blue", "r1")
    before = state["pools"]["blue"]
    after = fs.apply(state, {"op": "failed", "pool": "blue", "run_id": "someone", "at": "t"})
    assert after["pools"]["blue"] == before


def test_seed_from_a_fleet_without_state():
    seeded = fs.apply(None, {"op": "seed", "live": "green", "at": "t", "verified": True,
                             "pools": {"green": {"version": "2.0", "sha256": SHA["2.0"]},
                                       "blue": {"version": "1.0", "sha256": SHA["1.0"]}}})
    assert seeded["live"] == "green" and seeded["pools"]["blue"]["status"] == "unknown"
    assert fs.rollback_target(seeded) is None  # the idle pool's past is not known
    after = deploy(seeded, "3.0", "blue", "r3")
    assert fs.rollback_target(after)["version"] == "2.0"


def test_the_newest_copy_wins_and_stale_ones_are_named():
    old = deploy(fs.empty(), "1.0", "blue", "r1")
    new = deploy(old, "2.0", "green", "r2")
    best, behind = fs.newest({"lb1": new, "lb2": old, "lb3": None})
    assert best == new and behind == ["lb2", "lb3"]
    assert fs.newest({"lb1": None}) == (fs.empty(), [])


def test_the_file_is_written_atomically_and_read_back(tmp_path):
    path = tmp_path / "fleet-state.json"
    assert fs.read(str(path)) is None
    state = deploy(fs.empty(), "1.0", "blue", "r1")
    fs.write(state, str(path))
    assert fs.read(str(path)) == state
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    assert [p.name for p in tmp_path.iterdir()] == ["fleet-state.json"]
    path.write_text("{not json")
    with pytest.raises(fs.StateError, match="cannot be read"):
        fs.read(str(path))
    path.write_text(json.dumps({"schema": 99}))
    with pytest.raises(fs.StateError, match="not a turnout fleet state"):
        fs.read(str(path))


def test_history_is_capped():
    state = fs.empty()
    pool = "blue"
    for number in range(fs.HISTORY_MAX + 5):
        version = f"1.{number}"
        SHA[version] = f"{number:064x}"
        state = deploy(state, version, pool, f"r{number}")
        pool = "green" if pool == "blue" else "blue"
    assert len(state["history"]) == fs.HISTORY_MAX
    assert state["history"][-1]["version"] == f"1.{fs.HISTORY_MAX + 4}"
